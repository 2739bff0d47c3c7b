"""The catalogue: SQLAlchemy 2 models for archives, fonds, records, files, events, transfers and the outbox.

Schema changes go through Alembic (``archive/migrations``); ``archive init`` upgrades to head.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Level(enum.StrEnum):
    province = "province"
    city = "city"
    county = "county"


class AccessStatus(enum.StrEnum):
    open = "open"
    restricted = "restricted"


class FileRole(enum.StrEnum):
    original = "original"
    preservation = "preservation"
    access = "access"


class TransferStatus(enum.StrEnum):
    received = "received"
    validating = "validating"
    storing = "storing"
    stored = "stored"
    rejected = "rejected"
    interrupted = "interrupted"  # the process died; rolled back by recovery


class Archive(Base):
    """A holding institution (档案馆), e.g. GD 广东省档案馆, GZ 广州市档案馆, GZ-TH 天河区档案馆."""

    __tablename__ = "archives"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(255))
    name_en: Mapped[str | None] = mapped_column(String(255))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("archives.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: What happens when an ``auto`` record's 25 years arrive (:mod:`archive.review`): ``open`` (by the rule,
    #: as at ingest) or ``review`` (it enters the opening-review queue first).
    on_age: Mapped[str] = mapped_column(String(16), default="open", server_default="open")

    parent: Mapped[Archive | None] = relationship(remote_side=[id])


class Fonds(Base):
    """全宗."""

    __tablename__ = "fonds"
    __table_args__ = (UniqueConstraint("archive_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))


class Transfer(Base):
    """One handed-over bag and what became of it (stored, or rejected with every problem found)."""

    __tablename__ = "transfers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    archive_id: Mapped[int | None] = mapped_column(ForeignKey("archives.id"))
    source: Mapped[str] = mapped_column(Text)
    bag_name: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=TransferStatus.received)
    # A bounded account: the first few problems of each code (errors, warnings), the count of every code,
    # and the file under ARCHIVE_HOME that holds them all (see ingest.problems.summarise).
    problems: Mapped[list[Any]] = mapped_column(default=list)
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    problem_counts: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    problem_file: Mapped[str | None] = mapped_column(Text)
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    byte_count: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)

    archive: Mapped[Archive | None] = relationship()


class BagFingerprint(Base):
    """Which stored transfer a bag's content fingerprint belongs to; unique, so a bag is stored once."""

    __tablename__ = "bag_fingerprints"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.id"))


class Record(Base):
    """档案: one archival unit (件/卷), stored as one OCFL object."""

    __tablename__ = "records"
    __table_args__ = (UniqueConstraint("archive_id", "archival_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id"), index=True)
    fonds_id: Mapped[int | None] = mapped_column(ForeignKey("fonds.id"))
    archival_code: Mapped[str] = mapped_column(String(255))  # 档号
    title: Mapped[str] = mapped_column(Text)  # 题名
    creator: Mapped[str | None] = mapped_column(Text)  # 责任者
    date_text: Mapped[str | None] = mapped_column(String(32))  # 日期 as written: YYYY, YYYY-MM, YYYY-MM-DD
    date_start: Mapped[dt.date | None] = mapped_column(Date)  # first day the date can mean
    date_end: Mapped[dt.date | None] = mapped_column(Date)  # last day the date can mean
    retention: Mapped[str | None] = mapped_column(String(16))  # 保管期限: permanent / 30y / 10y
    security_class: Mapped[str | None] = mapped_column(String(32))  # 密级
    access_status: Mapped[str] = mapped_column(String(16), default=AccessStatus.restricted, index=True)
    access_requested: Mapped[str] = mapped_column(String(16), default="auto")  # open / restricted / auto
    access_reason: Mapped[str | None] = mapped_column(Text)
    access_review_on: Mapped[dt.date | None] = mapped_column(Date)  # when the 25-year rule would open it
    description: Mapped[str | None] = mapped_column(Text)  # 摘要
    keywords: Mapped[str | None] = mapped_column(Text)  # 主题词, separated by ；or ;
    language: Mapped[str | None] = mapped_column(String(32))
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    byte_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transfer_id: Mapped[str] = mapped_column(ForeignKey("transfers.id"), index=True)
    ocfl_object_id: Mapped[str] = mapped_column(String(512), unique=True)
    ocfl_head: Mapped[str] = mapped_column(String(16), default="v1")
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    #: When the public last saw the record change (opened, closed again, or its public metadata edited while
    #: open); NULL while it has never been public. OAI-PMH datestamps are this; a record with a value that
    #: is not open now is a deleted record there (``deletedRecord=persistent``). Set through
    #: :func:`archive.services.note_public_change` only.
    public_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    archive: Mapped[Archive] = relationship()
    fonds: Mapped[Fonds | None] = relationship()
    files: Mapped[list[File]] = relationship(back_populates="record", order_by="File.id")


class File(Base):
    """A file of a record in one OCFL version: an original, or a derivative made from one."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("record_id", "logical_path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"), index=True)
    logical_path: Mapped[str] = mapped_column(Text)  # path inside the OCFL object's state
    bag_path: Mapped[str | None] = mapped_column(Text)  # path in the transfer's bag, e.g. data/…
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    sha512: Mapped[str] = mapped_column(String(128))
    digests: Mapped[dict[str, Any]] = mapped_column(default=dict)  # every other digest: bag's own, sm3, …
    puid: Mapped[str | None] = mapped_column(String(32))
    mime: Mapped[str | None] = mapped_column(String(255))
    format_name: Mapped[str | None] = mapped_column(String(255))
    format_version: Mapped[str | None] = mapped_column(String(64))
    identification: Mapped[dict[str, Any]] = mapped_column(default=dict)  # basis, warnings, tool versions
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)  # e.g. PDF pages/encryption/PDF-A claim
    role: Mapped[str] = mapped_column(String(16), default=FileRole.original)
    derived_from_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"))
    tool: Mapped[str | None] = mapped_column(String(255))
    tool_version: Mapped[str | None] = mapped_column(String(64))
    ocfl_version: Mapped[str] = mapped_column(String(16), default="v1")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_fixity_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    record: Mapped[Record] = relationship(back_populates="files")


class Event(Base):
    """A PREMIS 3 event in the append-only, hash-chained log (see :mod:`archive.events`)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)  # also the position in the chain
    identifier: Mapped[str] = mapped_column(String(64), unique=True)  # PREMIS eventIdentifier (UUID)
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))  # success / failure / warning
    detail: Mapped[str | None] = mapped_column(Text)
    outcome_detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    agent: Mapped[str] = mapped_column(String(255))  # software + version, or a person
    object_type: Mapped[str] = mapped_column(String(16))  # record / file / transfer / archive / node
    object_id: Mapped[str] = mapped_column(String(512), index=True)  # e.g. GZ/档号 or the transfer id
    record_id: Mapped[int | None] = mapped_column(ForeignKey("records.id"), index=True)
    transfer_id: Mapped[str | None] = mapped_column(String(40), index=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ChainHead(Base):
    """One row holding the last event's id and hash; locked while appending so the chain stays linear."""

    __tablename__ = "chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class Outbox(Base):
    """Work for later stages (indexing, migration), written in the same transaction as the records."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "topic", "done_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(32))  # "index" / "migrate"
    key: Mapped[str] = mapped_column(String(255), unique=True)  # idempotency key, e.g. migrate:file:42
    record_id: Mapped[int | None] = mapped_column(ForeignKey("records.id"))
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    available_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class HarvestSource(Base):
    """An OAI-PMH repository (a peer node) this node harvests into its regional catalogue copy."""

    __tablename__ = "harvest_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    base_url: Mapped[str] = mapped_column(String(1024), unique=True)  # the OAI-PMH endpoint, …/oai
    origin_url: Mapped[str] = mapped_column(String(1024), index=True)  # the node's public URL
    set_spec: Mapped[str | None] = mapped_column(String(255))
    metadata_prefix: Mapped[str | None] = mapped_column(String(64))  # chosen at the first harvest
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The repository's responseDate at the start of the last successful harvest: the next ``from``.
    next_from: Mapped[str | None] = mapped_column(String(32))
    last_success_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[str | None] = mapped_column(String(16))  # ok / error
    last_error: Mapped[str | None] = mapped_column(Text)
    record_count: Mapped[int] = mapped_column(Integer, default=0)


class HarvestedRecord(Base):
    """A peer's open record as last harvested (metadata only, no files), apart from this node's records."""

    __tablename__ = "harvested_records"
    __table_args__ = (UniqueConstraint("source_id", "identifier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("harvest_sources.id", ondelete="CASCADE"), index=True)
    identifier: Mapped[str] = mapped_column(String(1024))  # the OAI identifier
    doc_id: Mapped[str] = mapped_column(String(512))  # "ARCHIVE/档号" in the copy's index
    datestamp: Mapped[str] = mapped_column(String(32))
    harvested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)


# -- staff accounts (archive/accounts) ----------------------------------------------------------------------


class Role(enum.StrEnum):
    admin = "admin"  # users, archives, peers; may act for every archive
    archivist = "archivist"  # ingest, describe, review access: only for the archives granted
    auditor = "auditor"  # read-only across the node


class User(Base):
    """A member of staff who signs in (web, later) or calls the staff API with a token."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(255))
    #: Argon2id (``$argon2id$…``); NULL for an account that signs in only with tokens or single sign-on.
    password_hash: Mapped[str | None] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="RoleGrant.id"
    )


class RoleGrant(Base):
    """One role held by a person; an archivist's grant names the archive (one row per archive)."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("user_id", "role", "archive_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    archive_id: Mapped[int | None] = mapped_column(ForeignKey("archives.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user: Mapped[User] = relationship(back_populates="grants")
    archive: Mapped[Archive | None] = relationship()


class ApiToken(Base):
    """A bearer token for the staff API: only the SHA-256 of its secret is kept; the text is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public part, printed in the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


# -- opening review (archive/review.py) ----------------------------------------------------------------------


class ReviewState(enum.StrEnum):
    scheduled = "scheduled"  # a next review decided earlier; becomes pending on its due date
    pending = "pending"  # in the queue, waiting for a decision
    decided = "decided"


class ReviewWhy(enum.StrEnum):
    age = "age"  # the 25 years arrived under a "review first" policy
    manual = "manual"  # an archivist put it up for review
    scheduled = "scheduled"  # the date for the next review set by an earlier decision


class Review(Base):
    """One opening review (开放审核) of a record: why it is in the queue, since when, by when, and the decision.

    At most one review per record is open (scheduled or pending); decided reviews stay as history."""

    __tablename__ = "reviews"
    __table_args__ = (
        Index("ix_reviews_archive_state", "archive_id", "state", "due_on"),
        Index(
            "uq_reviews_open_record",
            "record_id",
            unique=True,
            sqlite_where=text("state != 'decided'"),
            postgresql_where=text("state != 'decided'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"), index=True)
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id"))
    why: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=ReviewState.pending)
    since: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    due_on: Mapped[dt.date] = mapped_column(Date)
    requested_by: Mapped[str] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)
    #: the transferring office's opinion (joint review, 联合审核): office, opinion, the date it was given
    office: Mapped[str | None] = mapped_column(String(255))
    office_opinion: Mapped[str | None] = mapped_column(Text)
    office_opinion_on: Mapped[dt.date | None] = mapped_column(Date)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decision: Mapped[str | None] = mapped_column(String(16))  # open / restricted
    decision_reason: Mapped[str | None] = mapped_column(Text)
    next_review_on: Mapped[dt.date | None] = mapped_column(Date)

    record: Mapped[Record] = relationship()
    archive: Mapped[Archive] = relationship()


class StaffSession(Base):
    """A signed-in staff member's web session. Only the SHA-256 of the session id (the cookie) is kept, so
    the table alone cannot be used to sign in; ``ended_at`` is set at logout, the row kept as evidence."""

    __tablename__ = "staff_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    address: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship()


class LoginAttempt(Base):
    """One sign-in attempt, written before the password is checked (so parallel guesses count too); failed
    ones within ``ARCHIVE_LOGIN_LOCKOUT_MINUTES`` lock the account and the address."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_login_at", "login", "at"),
        Index("ix_login_attempts_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)
