"""The format policy: which preservation actions run for which format (PRONOM id).

Choices made here:

* **Data, not code.** Rules live in TOML (``preservation/default_policy.toml``, shipped). A node's own file —
  the ``path`` argument of :func:`load_policy`, else ``ARCHIVE_POLICY_FILE`` (``Settings.policy_file``)
  — is merged over the defaults: its rules win for the PUIDs and extensions they name, its ``[default]``
  replaces the shipped one. To stop a migration, a node maps the PUID to ``["keep"]``.
* **Matching.** The PUID's rule first; when the PUID has no rule (``None``, ``"UNKNOWN"``, or a container
  id such as ZIP/OLE2 that Siegfried reports for OFD and Kingsoft WPS files), the file's extension; else the
  default rule (keep, with a preservation risk).
* **Actions** are a fixed catalogue (:data:`ACTIONS`), implemented in ``preservation/actions.py``; a policy
  naming an unknown action is refused (:class:`~preservation.tools.PolicyInvalid`), so a typo never turns
  into a silent "keep". ``"keep"`` is not an action: :meth:`Policy.actions_for` returns only actions that
  produce a derivative (an empty list means keep the original as it is).
* **Risks** are zh/en notes: a rule's (e.g. OFD, unknown formats) via :meth:`Policy.risk_for`; an action's
  own caveat (e.g. Ghostscript drops JavaScript) on :attr:`ActionSpec.risk`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from archive.config import get_settings
from preservation.tools import PolicyInvalid

DEFAULT_POLICY = Path(__file__).resolve().parent / "default_policy.toml"
POLICY_ENV = "ARCHIVE_POLICY_FILE"
KEEP = "keep"

Role = Literal["preservation", "access"]


@dataclass(frozen=True)
class Note:
    """A message for the archivist, in Chinese and English."""

    zh: str
    en: str


@dataclass(frozen=True)
class ActionSpec:
    """One preservation action: what it makes, with which tool, and what it may lose."""

    name: str
    role: Role
    extension: str
    tool: str
    description: str
    risk: Note | None = None


ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "pdfa",
            "preservation",
            "pdf",
            "gs",
            "PDF → PDF/A-2b (Ghostscript pdfwrite, sRGB output intent)",
            Note(
                "Ghostscript 重写 PDF：JavaScript、表单动作和附件会被移除，透明效果可能被拼合",
                "Ghostscript rewrites the PDF: JavaScript, form actions and attachments are removed, "
                "transparency may be flattened",
            ),
        ),
        ActionSpec(
            "office-pdfa",
            "preservation",
            "pdf",
            "soffice",
            "Office document → PDF/A-2b (LibreOffice headless)",
            Note(
                "由 LibreOffice 排版，字体缺失时版式可能与原软件不同",
                "Laid out by LibreOffice; where fonts are missing the layout may differ from the original "
                "application",
            ),
        ),
        ActionSpec(
            "image-tiff",
            "preservation",
            "tif",
            "convert",
            "Raster image → TIFF, LZW (lossless), all frames, ICC profile kept (ImageMagick)",
        ),
        ActionSpec(
            "image-access-jpeg",
            "access",
            "jpg",
            "convert",
            "Raster image → JPEG access copy, quality 85, longest edge at most 2000 px (ImageMagick)",
        ),
        ActionSpec("audio-flac", "preservation", "flac", "ffmpeg", "WAVE → FLAC (lossless, metadata kept)"),
        ActionSpec(
            "video-ffv1",
            "preservation",
            "mkv",
            "ffmpeg",
            "Video → FFV1 level 3 (intra-only, slice CRCs) + FLAC audio in Matroska",
        ),
        ActionSpec(
            "video-access-mp4",
            "access",
            "mp4",
            "ffmpeg",
            "Video → H.264 (yuv420p, CRF 23) + AAC in MP4, fast start",
        ),
    )
}

#: Actions that are not chosen by format but by a finding (preservation/pdf_repair.py).
REPAIR_ACTION = ActionSpec(
    "pdf-repair",
    "preservation",
    "pdf",
    "qpdf",
    "Damaged PDF → repaired copy (qpdf rebuilds the cross-reference table)",
)


@dataclass(frozen=True)
class Rule:
    label: str
    actions: tuple[str, ...]
    risk: Note | None = None
    puids: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    source: str = ""


@dataclass
class Policy:
    default: Rule
    by_puid: dict[str, Rule] = field(default_factory=dict)
    by_extension: dict[str, Rule] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)

    def rule_for(self, puid: str | None, filename: str | None = None) -> Rule:
        """The rule that applies: the PUID's, else the extension's, else the default."""
        if puid and puid in self.by_puid:
            return self.by_puid[puid]
        if filename:
            ext = Path(filename).suffix.lower().lstrip(".")
            if ext in self.by_extension:
                return self.by_extension[ext]
        return self.default

    def actions_for(self, puid: str | None, filename: str | None = None) -> list[ActionSpec]:
        """The actions to run (preservation first, then access); empty means keep the original as it is."""
        return [ACTIONS[name] for name in self.rule_for(puid, filename).actions if name != KEEP]

    def risk_for(self, puid: str | None, filename: str | None = None) -> Note | None:
        """The preservation risk to report for this format, if any."""
        return self.rule_for(puid, filename).risk

    def table(self) -> list[tuple[str, str, tuple[str, ...], bool]]:
        """(PUID or .ext, label, actions, has risk) for every mapped format — for docs and the CLI."""
        rows = [(p, r.label, r.actions, r.risk is not None) for p, r in sorted(self.by_puid.items())]
        rows += [
            (f".{e}", r.label, r.actions, r.risk is not None) for e, r in sorted(self.by_extension.items())
        ]
        return rows


def policy_file_from_env() -> Path | None:
    """The node's policy override, ``Settings.policy_file`` (``ARCHIVE_POLICY_FILE``; unset or empty: none)."""
    value = get_settings().policy_file
    return value.expanduser() if value is not None else None


def load_policy(path: Path | None = None) -> Policy:
    """The shipped defaults with ``path`` (or ``ARCHIVE_POLICY_FILE``) merged over them."""
    policy = Policy(default=Rule("default", (KEEP,)))
    _merge(policy, DEFAULT_POLICY)
    override = path if path is not None else policy_file_from_env()
    if override is not None:
        _merge(policy, Path(override))
    return policy


def _invalid(path: Path, variant: str | None = None, **details: Any) -> PolicyInvalid:
    return PolicyInvalid(variant=variant, path=path, **details)


def _rule(path: Path, raw: Any, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise _invalid(path, "not_table", where=where)
    actions = raw.get("actions")
    if not isinstance(actions, list) or not actions or not all(isinstance(a, str) for a in actions):
        raise _invalid(path, "no_actions", where=where)
    unknown = [a for a in actions if a != KEEP and a not in ACTIONS]
    if unknown:
        known = ", ".join([KEEP, *ACTIONS])
        raise _invalid(path, "unknown_actions", where=where, unknown=", ".join(unknown), known=known)
    if KEEP in actions and len(actions) > 1:
        raise _invalid(path, "keep_combined", where=where)
    zh, en = raw.get("risk_zh"), raw.get("risk_en")
    risk = Note(str(zh or en), str(en or zh)) if (zh or en) else None
    puids = raw.get("puids", [])
    exts = raw.get("extensions", [])
    if not isinstance(puids, list) or not isinstance(exts, list):
        raise _invalid(path, "lists", where=where)
    return Rule(
        label=str(raw.get("label", where)),
        actions=tuple(actions),
        risk=risk,
        puids=tuple(str(p).strip() for p in puids),
        extensions=tuple(str(e).strip().lower().lstrip(".") for e in exts),
        source=str(path),
    )


def _merge(policy: Policy, path: Path) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _invalid(path, "not_found") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _invalid(path, reason=exc) from exc
    if "default" in data:
        policy.default = _rule(path, data["default"], "[default]")
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise _invalid(path, "rules_array")
    for n, raw in enumerate(rules, 1):
        rule = _rule(path, raw, f"rule {n}")
        if not rule.puids and not rule.extensions:
            raise _invalid(path, "no_match", rule=n)
        for puid in rule.puids:
            policy.by_puid[puid] = rule
        for ext in rule.extensions:
            policy.by_extension[ext] = rule
    policy.sources.append(path)
