"""The format policy (preservation/policy.py): defaults, overrides, and PUIDs checked on real files."""

from __future__ import annotations

from pathlib import Path

import pygfried
import pytest

from preservation.policy import ACTIONS, POLICY_ENV, ActionSpec, load_policy, policy_file_from_env
from preservation.tools import PolicyInvalid
from tests.preservation import samples


def names(specs: list[ActionSpec]) -> list[str]:
    return [s.name for s in specs]


def test_default_table() -> None:
    policy = load_policy(None)
    assert names(policy.actions_for("fmt/276")) == ["pdfa"]
    assert policy.actions_for("fmt/477") == [] and policy.risk_for("fmt/477") is None
    assert names(policy.actions_for("fmt/412")) == ["office-pdfa"]
    assert names(policy.actions_for("fmt/43")) == ["image-tiff", "image-access-jpeg"]
    assert names(policy.actions_for("fmt/353")) == ["image-access-jpeg"]
    assert names(policy.actions_for("fmt/141")) == ["audio-flac"]
    assert names(policy.actions_for("fmt/199")) == ["video-ffv1", "video-access-mp4"]
    roles = {s.name: s.role for s in policy.actions_for("fmt/199")}
    assert roles == {"video-ffv1": "preservation", "video-access-mp4": "access"}
    assert ACTIONS["pdfa"].extension == "pdf" and ACTIONS["image-tiff"].extension == "tif"


def test_unknown_and_ofd_are_kept_with_a_risk() -> None:
    policy = load_policy(None)
    for puid in (None, "UNKNOWN", "fmt/999999"):
        assert policy.actions_for(puid) == []
        risk = policy.risk_for(puid)
        assert risk is not None and risk.zh and risk.en
    # Siegfried calls an OFD a ZIP; the extension rule names the real risk.
    assert policy.actions_for("x-fmt/263", "公文.OFD") == []
    ofd = policy.risk_for("x-fmt/263", "公文.OFD")
    assert ofd is not None and "OFD" in ofd.en and "OFD" in ofd.zh
    # Kingsoft WPS (OLE2 container) goes to LibreOffice by extension, with a note.
    assert names(policy.actions_for("fmt/111", "report.wps")) == ["office-pdfa"]
    # A PUID rule wins over the extension.
    assert names(policy.actions_for("fmt/276", "odd.ofd")) == ["pdfa"]


def test_override_merges_over_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = tmp_path / "policy.toml"
    override.write_text(
        '[[rules]]\nlabel = "keep PDF 1.7 as is here"\npuids = ["fmt/276"]\nactions = ["keep"]\n'
        'risk_zh = "本馆暂不转换"\nrisk_en = "not migrated at this node"\n'
        '[[rules]]\nlabel = "OFD to access JPEG?"\nextensions = ["ofd"]\nactions = ["keep"]\n'
        '[default]\nactions = ["keep"]\nrisk_en = "review"\n',
        encoding="utf-8",
    )
    policy = load_policy(override)
    assert policy.actions_for("fmt/276") == []
    risk = policy.risk_for("fmt/276")
    assert risk is not None and risk.zh == "本馆暂不转换"
    assert names(policy.actions_for("fmt/18")) == ["pdfa"]  # untouched defaults stay
    assert policy.risk_for("x-fmt/263", "a.ofd") is None
    default_risk = policy.risk_for("UNKNOWN")
    assert default_risk is not None and default_risk.en == "review" and default_risk.zh == "review"
    assert len(policy.sources) == 2

    monkeypatch.setenv(POLICY_ENV, str(override))
    assert policy_file_from_env() == override
    assert load_policy().actions_for("fmt/276") == []
    monkeypatch.setenv(POLICY_ENV, "")
    assert policy_file_from_env() is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[[rules]]\npuids = ["fmt/18"]\nactions = ["pdfaa"]\n', "pdfaa"),
        ('[[rules]]\npuids = ["fmt/18"]\nactions = ["keep", "pdfa"]\n', "keep"),
        ('[[rules]]\nactions = ["pdfa"]\n', "neither"),
        ("[[rules]\n", "invalid"),
    ],
)
def test_bad_override_is_refused(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyInvalid) as err:
        load_policy(path)
    assert err.value.code == "PRS007"
    assert needle in str(err.value)
    with pytest.raises(PolicyInvalid):
        load_policy(tmp_path / "missing.toml")


def test_puids_of_real_files_are_mapped(tmp_path: Path) -> None:
    """Files made by the tools themselves are identified by Siegfried as PUIDs the policy maps."""
    files = {
        "pdf": samples.make_pdf(tmp_path / "a.pdf", pages=3),
        "docx": samples.make_docx(tmp_path / "a.docx"),
        "xlsx": samples.make_xlsx(tmp_path / "a.xlsx"),
        "odt": samples.make_odt(tmp_path / "a.odt"),
        "wav": samples.make_wav(tmp_path / "a.wav", seconds=0.2),
        "mp4": samples.make_video(tmp_path / "a.mp4", seconds=0.5),
        "avi": samples.make_video(tmp_path / "a.avi", seconds=0.5),
        "mov": samples.make_video(tmp_path / "a.mov", seconds=0.5),
    }
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("BMP", "bmp"), ("GIF", "gif"), ("TIFF", "tif")):
        files[ext] = samples.make_image(tmp_path / f"a.{ext}", fmt)
    expected = {
        "pdf": ["pdfa"],
        "docx": ["office-pdfa"],
        "xlsx": ["office-pdfa"],
        "odt": ["office-pdfa"],
        "wav": ["audio-flac"],
        "mp4": ["video-ffv1", "video-access-mp4"],
        "avi": ["video-ffv1", "video-access-mp4"],
        "mov": ["video-ffv1", "video-access-mp4"],
        "jpg": ["image-tiff", "image-access-jpeg"],
        "png": ["image-tiff", "image-access-jpeg"],
        "bmp": ["image-tiff", "image-access-jpeg"],
        "gif": ["image-tiff", "image-access-jpeg"],
        "tif": ["image-access-jpeg"],
    }
    policy = load_policy(None)
    report = pygfried.Scanner().identify_many([str(p) for p in files.values()], workers=1)["files"]
    found = {Path(f["filename"]).suffix[1:]: f["matches"][0]["id"] for f in report}
    for ext, want in expected.items():
        assert names(policy.actions_for(found[ext])) == want, (ext, found[ext])
