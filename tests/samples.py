"""Sample files and bags built on the fly for tests (and ideas for the demo generator).

Everything is generated with the real libraries (reportlab, pikepdf, python-docx, Pillow), so the formats are
genuine and the identification tests mean something.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"


def bag_files(payload: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """The files of a tiny valid BagIt bag: bagit.txt, the payload under data/ and manifest-sha256.txt."""
    payload = dict(payload or {"a.txt": "样例档案 sample record\n".encode()})
    files = {"bagit.txt": BAGIT_TXT}
    lines = []
    for name, content in sorted(payload.items()):
        files[f"data/{name}"] = content
        lines.append(f"{hashlib.sha256(content).hexdigest()}  data/{name}\n")
    files["manifest-sha256.txt"] = "".join(lines).encode()
    return files


def make_bag(folder: Path, payload: Mapping[str, bytes] | None = None) -> Path:
    """Write a tiny bag into ``folder`` (created) and return it."""
    for name, content in bag_files(payload).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return folder


def make_bag_zip(path: Path, *, prefix: str = "bag/", payload: Mapping[str, bytes] | None = None) -> Path:
    """A zipped bag; ``prefix`` is the top-level folder ("" puts bagit.txt at the top)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in bag_files(payload).items():
            zf.writestr(prefix + name, content)
    return path


def make_bag_tar(
    path: Path, *, mode: str = "w", prefix: str = "bag/", payload: Mapping[str, bytes] | None = None
) -> Path:
    """A tarred bag; ``mode`` "w", "w:gz", "w:bz2" or "w:xz"."""
    with tarfile.open(path, mode) as tf:  # type: ignore[call-overload]
        for name, content in bag_files(payload).items():
            add_tar_bytes(tf, prefix + name, content)
    return path


def add_tar_bytes(tf: tarfile.TarFile, name: str, content: bytes, mtime: int = 1_700_000_000) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mtime = mtime
    tf.addfile(info, io.BytesIO(content))


# -------------------- PDFs


def make_sample_pdf(path: Path, text: str = "Sample record", pages: int = 1) -> Path:
    """A plain PDF made by reportlab."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path))
    for n in range(pages):
        c.drawString(72, 720, f"{text} ({n + 1})")
        c.showPage()
    c.save()
    return path


def make_js_pdf(path: Path) -> Path:
    """A PDF that runs JavaScript when opened (OpenAction) and has a document-level script (Names tree)."""
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page()
    action = pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert('hi');"))
    pdf.Root.OpenAction = pdf.make_indirect(action)
    pdf.Root.Names = pikepdf.Dictionary(
        JavaScript=pikepdf.Dictionary(
            Names=pikepdf.Array([pikepdf.String("init"), pdf.make_indirect(action)])
        )
    )
    pdf.save(path)
    return path


def make_encrypted_pdf(path: Path, *, user_password: str = "", owner_password: str = "owner") -> Path:
    import pikepdf

    source = make_sample_pdf(path.with_suffix(".plain.pdf"), "Encrypted record")
    with pikepdf.open(source) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(user=user_password, owner=owner_password, R=6))
    source.unlink()
    return path


def make_pdfa_claim_pdf(path: Path, part: str = "2", conformance: str = "B") -> Path:
    """A PDF whose XMP *claims* PDF/A (the claim only; it is not a conforming PDF/A file)."""
    import pikepdf

    source = make_sample_pdf(path.with_suffix(".plain.pdf"), "PDF/A claim")
    with pikepdf.open(source) as pdf:
        with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
            meta["pdfaid:part"] = part
            meta["pdfaid:conformance"] = conformance
        pdf.save(path)
    source.unlink()
    return path


# -------------------- other formats


def make_docx(path: Path, text: str = "样例文件 sample document") -> Path:
    import docx

    document = docx.Document()
    document.add_paragraph(text)
    document.save(str(path))
    return path


def make_image(path: Path, fmt: str, size: tuple[int, int] = (64, 48)) -> Path:
    """An RGB image in Pillow format ``fmt`` ("PNG", "JPEG", "TIFF", …)."""
    from PIL import Image

    image = Image.new("RGB", size, (200, 120, 40))
    for x in range(size[0]):
        image.putpixel((x, x % size[1]), (x * 4 % 256, 0, 255))
    image.save(path, fmt)
    return path


def make_csv(path: Path) -> Path:
    path.write_text("档号,题名,日期\nGD-1,会议纪要,2001-05-01\nGD-2,年度报告,2002-01-15\n", encoding="utf-8")
    return path


def make_chinese_text(path: Path) -> Path:
    path.write_text("关于做好档案移交工作的通知\n各单位：请按时移交档案。\n", encoding="utf-8")
    return path
