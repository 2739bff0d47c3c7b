"""Sample files for the preservation tests, made with the real tools and libraries.

PDFs come from reportlab (with Chinese text in the STSong-Light CID font), DOCX from python-docx, the other
office formats from LibreOffice itself (one ``soffice`` call converts a whole batch), images from Pillow, WAV
from the ``wave`` module and video from ffmpeg's ``lavfi`` test sources. Nothing is shipped as a binary.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import subprocess
import tempfile
import wave
from collections.abc import Iterable
from pathlib import Path

CHINESE = "关于做好档案移交工作的通知"


def make_pdf(path: Path, pages: int = 1, text: str = "Sample record") -> Path:
    """A plain (non-PDF/A) PDF with Chinese and Latin text on each of ``pages`` pages."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(path))
    for n in range(pages):
        c.setFont("STSong-Light", 14)
        c.drawString(72, 720, f"{CHINESE} 第{n + 1}页")
        c.setFont("Helvetica", 12)
        c.drawString(72, 700, f"{text} (page {n + 1})")
        c.setFillColorRGB(0.8, 0.3, 0.1)
        c.rect(72, 600, 200, 60, fill=1)
        c.showPage()
    c.save()
    return path


def make_damaged_pdf(path: Path, pages: int = 2) -> Path:
    """A PDF whose cross-reference table is wrong (offsets shifted) and whose tail is cut off."""
    good = make_pdf(path.with_suffix(".good.pdf"), pages=pages).read_bytes()
    path.with_suffix(".good.pdf").unlink()
    xref = good.rindex(b"xref")
    # Shift every object offset in the table, then drop the trailer's %%EOF.
    head, table = good[:xref], good[xref:]
    lines = table.split(b"\n")
    shifted = [
        b"%010d %s" % (int(line[:10]) + 7, line[11:]) if len(line) >= 18 and line[:10].isdigit() else line
        for line in lines
    ]
    damaged = head + b"\n".join(shifted)
    path.write_bytes(damaged[: damaged.rindex(b"%%EOF")])
    return path


def make_garbage_pdf(path: Path) -> Path:
    """A file that says it is a PDF and is nothing of the kind."""
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\nnot a pdf at all\n")
    return path


def make_docx(path: Path, text: str = f"{CHINESE} sample document") -> Path:
    import docx

    document = docx.Document()
    document.add_heading("样例文件", level=1)
    document.add_paragraph(text)
    document.save(str(path))
    return path


def make_csv(path: Path) -> Path:
    path.write_text("档号,题名,日期\nGD-1,会议纪要,2001-05-01\nGD-2,年度报告,2002-01-15\n", encoding="utf-8")
    return path


def make_text(path: Path) -> Path:
    path.write_text(f"{CHINESE}\n各单位：请按时移交档案。\n", encoding="utf-8")
    return path


def soffice_convert(sources: Iterable[Path], target: str, outdir: Path, timeout: float = 120.0) -> None:
    """Convert ``sources`` to ``target`` (e.g. ``"xlsx"``, ``"doc"``) with one LibreOffice call."""
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="samples-lo-") as profile:
        subprocess.run(
            [
                "soffice",
                f"-env:UserInstallation=file://{profile}",
                "--headless",
                "--norestore",
                "--convert-to",
                target,
                "--outdir",
                str(outdir),
                *map(str, sources),
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "HOME": profile},
        )


def make_office_set(folder: Path, targets: Iterable[str]) -> dict[str, Path]:
    """Office files made by LibreOffice from a DOCX (text formats), a CSV (sheets) or plain text (slides).

    ``targets`` are extensions: doc, docx, rtf, odt, xls, xlsx, ods, ppt, pptx, odp.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wanted = list(targets)
    groups = {
        "text": (["doc", "rtf", "odt"], make_docx(folder / "src-text.docx")),
        "sheet": (["xls", "xlsx", "ods"], make_csv(folder / "src-sheet.csv")),
        "slide": (["ppt", "pptx", "odp"], make_text(folder / "src-slide.txt")),
    }
    out: dict[str, Path] = {}
    for kind, (exts, source) in groups.items():
        for ext in exts:
            if ext not in wanted:
                continue
            filt = {
                "ppt": "ppt:MS PowerPoint 97",
                "pptx": "pptx:Impress MS PowerPoint 2007 XML",
                "odp": "odp:impress8",
            }.get(ext, ext)
            if kind == "slide":
                # Text opens in Writer; go through an ODP made by Impress's own import of a PDF? Simpler: ask
                # Impress to open the text via its import filter.
                _slides_from_text(source, ext, filt, folder)
            else:
                soffice_convert([source], ext, folder / ext)
                produced = folder / ext / f"{source.stem}.{ext}"
                produced.rename(folder / f"sample.{ext}")
            out[ext] = folder / f"sample.{ext}"
    if "docx" in wanted:
        out["docx"] = groups["text"][1]
    return out


def _slides_from_text(source: Path, ext: str, filt: str, folder: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="samples-lo-") as profile:
        subprocess.run(
            [
                "soffice",
                f"-env:UserInstallation=file://{profile}",
                "--headless",
                "--norestore",
                "--infilter=Impress MS PowerPoint 2007 XML",
                "--convert-to",
                filt,
                "--outdir",
                str(folder / ext),
                str(source),
            ],
            check=False,
            capture_output=True,
            timeout=120,
            env={**os.environ, "HOME": profile},
        )
    produced = folder / ext / f"{source.stem}.{ext}"
    if produced.exists():
        produced.rename(folder / f"sample.{ext}")


def make_image(path: Path, fmt: str, size: tuple[int, int] = (120, 80)) -> Path:
    """An image in Pillow format ``fmt`` (JPEG, PNG, BMP, GIF, TIFF) with a gradient and a diagonal."""
    from PIL import Image

    image = Image.new("RGB", size)
    image.putdata(
        [(x * 255 // size[0], y * 255 // size[1], 128) for y in range(size[1]) for x in range(size[0])]
    )
    for x in range(min(size)):
        image.putpixel((x, x), (255, 255, 255))
    if fmt == "GIF":
        image = image.convert("P")
    image.save(path, fmt)
    return path


def make_wav(path: Path, seconds: float = 1.0, rate: int = 44100) -> Path:
    """A mono 16-bit sine wave (440 Hz)."""
    frames = int(seconds * rate)
    data = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * n / rate))) for n in range(frames)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def make_video(path: Path, seconds: float = 1.0) -> Path:
    """A 160×120, 10 fps test picture with a sine tone, in the container ``path``'s suffix names."""
    codec = {
        ".mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
        ".mov": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
        ".avi": ["-c:v", "mpeg4", "-c:a", "pcm_s16le"],
        ".mpg": ["-c:v", "mpeg2video", "-c:a", "mp2"],
    }[path.suffix]
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=duration={seconds}:size=160x120:rate=10",
            "-f",
            "lavfi",
            "-i",
            f"sine=duration={seconds}",
            *codec,
            "-shortest",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def corrupt(path: Path, keep: int = 64) -> Path:
    """Keep a file's first ``keep`` bytes (its magic) and replace the rest with noise."""
    head = path.read_bytes()[:keep]
    path.write_bytes(head + os.urandom(4096))
    return path


def have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)
