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
import zipfile
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
    """A PDF whose cross-reference table is overwritten with junk and whose ``%%EOF`` is cut off.

    The objects and the trailer dictionary survive, so a reader can rebuild the table by scanning.
    """
    good_path = make_pdf(path.with_suffix(".good.pdf"), pages=pages)
    good = good_path.read_bytes()
    good_path.unlink()
    xref, trailer = good.rindex(b"\nxref\n") + 1, good.rindex(b"trailer")
    damaged = good[:xref] + b"J" * (trailer - xref - 1) + b"\n" + good[trailer:]
    path.write_bytes(damaged[: damaged.rindex(b"%%EOF")])
    return path


def make_bad_stream_pdf(path: Path, pages: int = 2) -> Path:
    """A PDF whose cross-reference table is sound but whose last page's content stream is cut-off deflate
    data: opening it and walking its objects finds nothing wrong (the ingest's probe calls it undamaged);
    only decoding the stream does (``qpdf --check``), and qpdf cannot repair it."""
    import zlib

    import pikepdf

    good = make_pdf(path.with_suffix(".good.pdf"), pages=pages)
    with pikepdf.open(good) as pdf:
        contents = pdf.pages[-1].Contents
        data = zlib.compress(contents.read_bytes())
        contents.write(data[: len(data) // 2] + b"\x00cut\xff" * 4, filter=pikepdf.Name.FlateDecode)
        pdf.save(path)
    good.unlink()
    return path


def with_output_intent(path: Path, dest: Path) -> Path:
    """``path`` with an sRGB output intent (as every PDF/A has), a form field on page 1, and a layer that
    is off by default holding the text ``HIDDEN-LAYER``."""
    import pikepdf

    from preservation.actions import _srgb_profile

    with pikepdf.open(path) as pdf:
        icc = pdf.make_stream(_srgb_profile().read_bytes(), N=3)
        pdf.Root.OutputIntents = [
            pikepdf.Dictionary(
                Type=pikepdf.Name.OutputIntent,
                S=pikepdf.Name.GTS_PDFA1,
                OutputConditionIdentifier="sRGB",
                DestOutputProfile=icc,
            )
        ]
        layer = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.OCG, Name="hidden"))
        pdf.Root.OCProperties = pikepdf.Dictionary(OCGs=[layer], D=pikepdf.Dictionary(OFF=[layer]))
        page = pdf.pages[0]
        font = pdf.make_indirect(
            pikepdf.Dictionary(
                Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
            )
        )
        page.Resources.Properties = pikepdf.Dictionary(oc1=layer)
        page.Resources.Font.FH = font
        page.contents_add(
            pdf.make_stream(b"/OC /oc1 BDC BT /FH 12 Tf 72 500 Td (HIDDEN-LAYER) Tj ET EMC"), prepend=False
        )
        appearance = pdf.make_stream(
            b"BT /FH 10 Tf 2 6 Td (FIELD-VALUE) Tj ET",
            Type=pikepdf.Name.XObject,
            Subtype=pikepdf.Name.Form,
            BBox=[0, 0, 200, 20],
            Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(FH=font)),
        )
        field = pdf.make_indirect(
            pikepdf.Dictionary(
                Type=pikepdf.Name.Annot,
                Subtype=pikepdf.Name.Widget,
                FT=pikepdf.Name.Tx,
                T="f1",
                V="FIELD-VALUE",
                Rect=[72, 400, 272, 420],
                AP=pikepdf.Dictionary(N=appearance),
                P=page.obj,
            )
        )
        page.Annots = pdf.make_indirect(pikepdf.Array([field]))
        pdf.Root.AcroForm = pikepdf.Dictionary(Fields=[field])
        pdf.save(dest)
    return dest


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


def make_xlsx(path: Path) -> Path:
    """A minimal one-sheet XLSX written by hand (inline strings), so no office suite is needed."""
    rows = [["档号", "题名", "日期"], ["GD-1", "会议纪要", "2001-05-01"], ["GD-2", "年度报告", "2002-01-15"]]
    cells = "".join(
        f'<row r="{r + 1}">'
        + "".join(
            f'<c r="{"ABC"[c]}{r + 1}" t="inlineStr"><is><t>{v}</t></is></c>' for c, v in enumerate(row)
        )
        + "</row>"
        for r, row in enumerate(rows)
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006"
    files = {
        "[Content_Types].xml": f'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="{pkg}/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}/relationships">'
        f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" '
        f'xmlns:r="{rel}"><sheets><sheet name="目录" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<?xml version="1.0" encoding="UTF-8"?><Relationships '
        f'xmlns="{pkg}/relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{main}">'
        f"<sheetData>{cells}</sheetData></worksheet>",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def make_odt(path: Path, text: str = CHINESE) -> Path:
    """A minimal ODF 1.2 text document written by hand (``mimetype`` first and stored, as ODF requires)."""
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="{office}" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f"<office:body><office:text><text:p>{text}</text:p></office:text></office:body>"
        "</office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" manifest:version="1.2" '
        'manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text", compress_type=zipfile.ZIP_STORED)
        z.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
    return path


def make_ofd(path: Path) -> Path:
    """A skeleton OFD (GB/T 33190) package: a ZIP with OFD.xml naming one document."""
    ns = "http://www.ofdspec.org/2016"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "OFD.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="{ns}" Version="1.0" '
            'DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>a1</ofd:DocID></ofd:DocInfo>'
            "<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>",
        )
        z.writestr("Doc_0/Document.xml", f'<ofd:Document xmlns:ofd="{ns}"/>')
    return path


def soffice_convert(
    source: Path, target: str, outdir: Path, infilter: str | None = None, timeout: float = 120.0
) -> Path:
    """Convert ``source`` to format ``target`` (e.g. ``"doc"``) with LibreOffice; returns the new file."""
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="samples-lo-") as profile:
        argv = ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--norestore"]
        if infilter:
            argv.append(f"--infilter={infilter}")
        subprocess.run(
            [*argv, "--convert-to", target, "--outdir", str(outdir), str(source)],
            check=True,
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "HOME": profile},
        )
    return outdir / f"{source.stem}.{target.split(':')[0]}"


def make_office_set(folder: Path) -> dict[str, Path]:
    """Every office format of the policy, made by LibreOffice itself (slow: one soffice run per format).

    Text formats come from a DOCX, sheets from an XLSX, slides from a PDF opened by Impress.
    """
    from concurrent.futures import ThreadPoolExecutor

    folder.mkdir(parents=True, exist_ok=True)
    text, sheet = make_docx(folder / "text.docx"), make_xlsx(folder / "sheet.xlsx")
    slides_pdf = make_pdf(folder / "slides.pdf")
    jobs: list[tuple[Path, str, str | None]] = [(text, ext, None) for ext in ("doc", "rtf", "odt")]
    jobs += [(sheet, ext, None) for ext in ("xls", "ods")]
    jobs += [(slides_pdf, ext, "impress_pdf_import") for ext in ("ppt", "pptx", "odp")]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        made = list(pool.map(lambda j: soffice_convert(j[0], j[1], folder / j[1], j[2]), jobs))
    out = {"docx": text, "xlsx": sheet}
    out.update({path.suffix[1:]: path for path in made})
    return out


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
