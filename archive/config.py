"""One settings class for the whole node, read from the environment (prefix ``ARCHIVE_``).

The embedded defaults need no setting at all: everything lives under ``ARCHIVE_HOME`` (default
``./archive-data``): the SQLite catalogue, the OCFL storage root, staging space and the transfer journal.
Every setting is documented in the README with its default.

**Secrets.** The settings that may carry a secret (marked ``secret`` below: the database, broker, result
backend and Elasticsearch URLs, and any secret key added later) are refused at start-up with
:class:`~archive.errors.InsecureSetting` (ARC010) when they still hold a placeholder (``change-me``, as
``.env.example`` ships) or a URL names a user with an empty password (``user:@host``), unless
``ARCHIVE_ENV=development``. The default is ``production``: the embedded defaults carry no secret, so a node
with no setting at all (``archive demo``) starts either way; a URL without any password (a Redis on a private
network, PostgreSQL over a socket) is accepted, since leaving auth to the network is a choice, not a slip.
"""

from __future__ import annotations

import os
import re
import shutil
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from archive.digests import BASE_DIGESTS, MANIFEST_ALGORITHMS
from archive.errors import InsecureSetting

#: A placeholder secret, as ``.env.example`` ships them (``change-me-postgres``).
PLACEHOLDER = re.compile(r"change-?me", re.IGNORECASE)
#: Formats an archive accepts for keeping by default (DA/T 70 item 3-3): MIME types as libmagic names them.
ACCEPTED_FORMATS = (
    "application/pdf",
    "application/ofd",
    "application/xml",
    "text/xml",
    "text/plain",
    "text/csv",
    "image/tiff",
    "image/jpeg",
    "image/png",
    "image/jp2",
    "audio/x-wav",
    "audio/wav",
    "audio/flac",
    "audio/x-flac",
    "audio/mpeg",
    "video/mp4",
    "video/x-matroska",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/msword",
    "application/vnd.ms-excel",
)
#: Marks a field that may carry a secret: checked for placeholders, redacted when shown.
SECRET: dict[str, Any] = {"secret": True}


def _userinfo(url: str) -> tuple[str, str | None]:
    """The (user, password) a URL names; password None when it has none."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    if not at:
        return "", None
    user, colon, password = userinfo.partition(":")
    return user, password if colon else None


def secret_problem(value: object) -> tuple[str, str] | None:
    """Why a secret setting's value must not be used (zh, en), or None when it may."""
    if value is None:
        return None
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    if PLACEHOLDER.search(text):
        return "含有占位密码（change-me）", "holds a placeholder secret (change-me)"
    if "://" in text:
        if _userinfo(text)[1] == "":
            return "的密码为空", "has an empty password"
    elif isinstance(value, SecretStr) and not text:
        return "为空", "is empty"
    return None


def redact(value: object) -> object:
    """A secret setting's value as it may be shown: a URL's password (or a whole secret) as ``***``."""
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return "***"
    text = str(value)
    if "://" not in text or _userinfo(text)[1] is None:
        return text
    parts = urlsplit(text)
    user, _ = _userinfo(text)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARCHIVE_", extra="ignore")

    env: Literal["production", "development"] = Field(
        default="production",
        description="'development' accepts placeholder secrets (change-me); production refuses them.",
    )
    home: Path = Field(default=Path("archive-data"), description="Where the node keeps its data.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default SQLite at $ARCHIVE_HOME/catalogue.sqlite3.",
        json_schema_extra=SECRET,
    )
    storage_root: Path | None = Field(
        default=None, description="OCFL storage root; default $ARCHIVE_HOME/ocfl."
    )
    max_transfer_bytes: int | None = Field(
        default=None,
        description="Largest unpacked transfer accepted; default half the free space under ARCHIVE_HOME.",
    )
    max_compression_ratio: float = Field(
        default=200.0, description="Refuse archives whose unpacked size exceeds this multiple of their size."
    )
    max_transfer_files: int = Field(default=1_000_000, description="Largest number of members in a transfer.")
    extra_digests: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Digests recorded besides sha256 and sha512, e.g. ['sm3'] (comma-separated in the env).",
    )
    problems_shown: int = Field(
        default=20,
        ge=1,
        description="Problems of each code a transfer's record and output show; all are in its problem file.",
    )
    hash_workers: int = Field(default=0, description="Threads that hash files; 0 means one per core.")
    tool_timeout: float = Field(default=120.0, description="Seconds any external tool may run.")
    siegfried_processes: int = Field(
        default=1,
        ge=1,
        description="Siegfried processes identifying a transfer's files at once, each on its own batches "
        "(~110 MB each).",
    )
    open_after_years: int = Field(default=25, description="Archives Law art. 27: years until records open.")
    # search (issue 3)
    elasticsearch_url: str | None = Field(
        default=None,
        description="Elasticsearch URL (credentials in it); unset means the embedded index (SQLite FTS5).",
        json_schema_extra=SECRET,
    )
    elasticsearch_index: str = Field(
        default="pearl-archive",
        description="Alias (and prefix of the versioned indices) of the public index.",
    )
    # workers (issue 4)
    broker_url: str | None = Field(
        default=None,
        description="Celery broker; default a server-less SQLite broker at $ARCHIVE_HOME/broker.sqlite3.",
        json_schema_extra=SECRET,
    )
    result_backend: str | None = Field(
        default=None,
        description="Celery result backend; default SQLite at $ARCHIVE_HOME/results.sqlite3.",
        json_schema_extra=SECRET,
    )
    policy_file: Path | None = Field(
        default=None, description="Format policy (TOML) merged over the shipped defaults."
    )
    replica_root: Path | None = Field(
        default=None,
        description="Older name for one file-system replica; counted as one more ARCHIVE_REPLICAS entry.",
    )
    # replicas (issue 13)
    replicas: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Replica targets, comma-separated: absolute paths and/or s3://bucket/prefix.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The S3-compatible endpoint of the s3:// replicas; keys from the usual AWS_* variables.",
    )
    s3_region: str = Field(default="us-east-1", description="The region name sent to the S3 endpoint.")
    replication_workers: int = Field(
        default=8, ge=1, description="Objects copied to a replica at once by one drain of the outbox."
    )
    replication_interval: float = Field(
        default=60.0, gt=0, description="Seconds between two drains of the replication outbox by the beat."
    )
    # federation (issue 10)
    federation_timeout: float = Field(
        default=2.0, gt=0, description="Seconds each peer may take to answer a regional query."
    )
    federation_breaker_failures: int = Field(
        default=3, ge=1, description="Consecutive failures after which a peer is skipped for a cool-down."
    )
    federation_cooldown: float = Field(
        default=30.0, ge=0, description="Seconds a failing peer is skipped before it is tried again."
    )
    federation_signature_ttl: int = Field(
        default=60, ge=1, le=300, description="Lifetime (seconds) of the signatures this node makes."
    )
    # public portal
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The portal's public address, for every absolute link (never taken from the request).",
    )
    portal_max_filter_values: int = Field(
        default=20, ge=1, le=1000, description="Most values one search filter (archive=, fonds=…) may carry."
    )
    portal_max_query_chars: int = Field(
        default=256, ge=1, le=10_000, description="Search text beyond this many characters is cut."
    )
    portal_max_query_bytes: int = Field(
        default=4096,
        ge=512,
        le=65_536,
        description="Longest search (URL-encoded, as every link of a result page repeats it).",
    )
    portal_max_page_size: int = Field(default=100, ge=1, le=100, description="Most hits on one search page.")
    portal_search_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Searches (page or API) one portal process works on at once, in worker threads; "
        "more wait their turn in order. The work is mostly Python, which runs one thread at a time: "
        "more threads only share the interpreter lock, making every answer later.",
    )
    portal_max_params: int = Field(
        default=200, ge=10, le=10_000, description="Most query parameters one portal request may carry."
    )
    dispatch_interval: float = Field(
        default=30.0, gt=0, description="Seconds between two drains of the migrate outbox by the beat."
    )
    audit_cycle_days: float = Field(
        default=30.0,
        gt=0,
        description="The nightly incremental audit checks objects not verified for this many days.",
    )
    task_max_retries: int = Field(
        default=3, ge=0, description="Retries of a failing preservation task (exponential backoff)."
    )
    # resumable uploads (issue 11)
    upload_expire_hours: float = Field(
        default=24.0, gt=0, description="Hours a partial (tus) upload is kept before it is cleaned up."
    )

    # staff web sessions and sign-in (issue 11)
    session_idle_minutes: int = Field(
        default=30, ge=1, le=24 * 60, description="A staff session ends after this many idle minutes."
    )
    cookie_secure: bool = Field(
        default=False,
        description="Send the session cookie only over HTTPS (always so when the request came by https).",
    )
    login_max_failures: int = Field(
        default=5, ge=1, le=1000, description="Failed sign-ins on one account that lock it for a while."
    )
    login_address_max_failures: int = Field(
        default=20, ge=1, le=10_000, description="Failed sign-ins from one address that lock it for a while."
    )
    login_lockout_minutes: int = Field(
        default=15, ge=1, le=7 * 24 * 60, description="How long failed sign-ins count towards a lockout."
    )

    # OAI-PMH and the harvested catalogue (issue 10)
    oai_page_size: int = Field(
        default=500, ge=1, le=10_000, description="Records or headers per OAI-PMH list response."
    )
    oai_repository_id: str = Field(
        default="pearl-node",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$",
        description="Namespace of this node's OAI identifiers (oai:<id>:ARCHIVE/档号); keep it stable.",
    )
    oai_repository_name: str | None = Field(
        default=None,
        description="repositoryName in the OAI-PMH Identify answer; default the archives' names.",
    )
    oai_admin_email: str = Field(
        default="archives@localhost.localdomain", description="adminEmail in the OAI-PMH Identify answer."
    )
    oai_token_ttl: int = Field(
        default=86_400, ge=60, description="Seconds an OAI-PMH resumption token stays valid."
    )
    harvest_timeout: float = Field(default=60.0, description="Seconds the harvester waits for one OAI page.")
    # -- 四性检测 (DA/T 70-2018), archive/checks
    receipt_checks: bool = Field(
        default=True,
        description="Run the 四性检测 receipt checks on every transfer (off only to measure them).",
    )
    clamd_socket: str | None = Field(
        default=None, description="clamd's Unix socket (production); unset: run clamscan once per check run."
    )
    clamav_db: Path | None = Field(
        default=None, description="Signature database for clamscan (--database); unset: ClamAV's own."
    )
    check_code_pattern: str = Field(
        default=r"[0-9A-Za-z]{1,16}(?:[-·.][0-9A-Za-z\u3400-\u9fff]{1,32}){1,6}[-·.]\d{1,6}",
        description="档号 pattern (DA/T 22: 全宗号-…-年度-保管期限-…-件号) a code must match whole.",
    )
    check_code_patterns: dict[str, str] = Field(
        default_factory=dict, description='Per-archive 档号 patterns as JSON, e.g. {"GZ": "GZ-\\d{3}-…"}.'
    )
    check_accepted_formats: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(ACCEPTED_FORMATS),
        description="MIME types or PRONOM ids the archive accepts for keeping (comma-separated).",
    )
    check_required_metadata: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["archival_code", "title"],
        description="Metadata items every record must have (comma-separated names).",
    )
    check_after_changes: bool = Field(
        default=True, description="Run the preservation checks on the records a migration or repair changed."
    )
    check_earliest_year: int = Field(default=1000, description="An earlier record date is implausible.")
    check_sample_fraction: float = Field(
        default=0.05, ge=0.05, le=1.0, description="Share of records a sample cycle checks (at least 5 %)."
    )
    report_font: Path | None = Field(
        default=None,
        description="TrueType font (.ttf/.ttc) embedded in PDF reports; default: the first Debian CJK "
        "TrueType font found (fonts-arphic-uming).",
    )

    # Signed, timestamped versions (archive.sealing)
    signature_algorithm: Literal["ed25519", "sm2"] = Field(
        default="ed25519",
        description="How every committed OCFL version is signed: ed25519, or sm2 (SM2 with SM3, 国密).",
    )
    tsa_url: str | None = Field(
        default=None, description="RFC 3161 time-stamping authority; unset: versions are signed only."
    )
    tsa_trust: Path | None = Field(
        default=None, description="PEM file of the CA certificates a TSA's certificate must chain to."
    )
    tsa_timeout: float = Field(default=10.0, gt=0, description="Seconds one request to the TSA may take.")

    @field_validator("check_accepted_formats", "check_required_metadata", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("clamav_db", mode="before")
    @classmethod
    def _blank_db_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("extra_digests", mode="before")
    @classmethod
    def _split_digests(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip().lower() for v in value.split(",") if v.strip()]
        return value

    @field_validator("replicas", mode="before")
    @classmethod
    def _split_replicas(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("extra_digests")
    @classmethod
    def _known_digests(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in MANIFEST_ALGORITHMS]
        if unknown:
            raise ValueError(f"unknown digest algorithm(s): {', '.join(unknown)}")
        return [v for v in value if v not in BASE_DIGESTS]

    @field_validator("policy_file", "replica_root", "report_font", "tsa_url", "tsa_trust", mode="before")
    @classmethod
    def _blank_path_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        if value and value.startswith("postgres://"):
            return "postgresql+psycopg://" + value.removeprefix("postgres://")
        if value and value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value or None

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.env == "development":
            return self
        for name in self.secret_fields():
            problem = secret_problem(getattr(self, name))
            if problem:
                raise InsecureSetting(f"ARCHIVE_{name.upper()}", *problem)
        return self

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [
            name
            for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        ]

    def redacted(self) -> dict[str, Any]:
        """Every setting as the node sees it, with the secrets in secret settings shown as ``***``."""
        secret = set(self.secret_fields())
        return {
            f"ARCHIVE_{name.upper()}": redact(getattr(self, name)) if name in secret else value
            for name, value in self.model_dump(mode="json").items()
        }

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"public_url must be an absolute http(s) URL without query, not {value!r}")
        return value.strip().rstrip("/")

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'catalogue.sqlite3'}"

    @property
    def ocfl_root(self) -> Path:
        return (self.storage_root or self.home_dir / "ocfl").expanduser().resolve()

    @property
    def staging_dir(self) -> Path:
        """Scratch space on the same file system as the storage root, so a finished object is one rename."""
        return self.ocfl_root.parent / "staging"

    @property
    def journal_dir(self) -> Path:
        return self.home_dir / "journal"

    @property
    def celery_broker(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.home_dir / 'broker.sqlite3'}"

    @property
    def celery_results(self) -> str:
        return self.result_backend or f"db+sqlite:///{self.home_dir / 'results.sqlite3'}"

    @property
    def oai_secret_file(self) -> Path:
        """The key that signs OAI-PMH resumption tokens (made on first use, mode 0600)."""
        return self.home_dir / "oai-token.key"

    @property
    def harvest_dir(self) -> Path:
        """The harvested regional catalogue's search index files, one per origin (apart from our own)."""
        return self.home_dir / "harvest"

    @property
    def recorded_digests(self) -> tuple[str, ...]:
        return BASE_DIGESTS + tuple(self.extra_digests)

    @property
    def workers(self) -> int:
        return self.hash_workers or (os.cpu_count() or 1)

    def transfer_byte_limit(self) -> int:
        if self.max_transfer_bytes is not None:
            return self.max_transfer_bytes
        probe = self.home_dir if self.home_dir.exists() else Path.cwd()
        return shutil.disk_usage(probe).free // 2


def get_settings() -> Settings:
    """Settings as the environment says now (tests change the environment between calls)."""
    return Settings()
