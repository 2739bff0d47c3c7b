"""Typed errors with stable codes and archivist-readable messages (Chinese and English).

Exception tree, so callers catch at the level they mean::

    ArchiveError                 base; ``code``, ``zh``, ``en``, ``exit_code``
    ├── UsageError               the command was asked for something that cannot be (exit 2)
    │   ├── NotInitialised       ARCHIVE_HOME has no catalogue yet (ARC001)
    │   ├── UnknownArchive       no holding archive with that code (ARC002)
    │   ├── BadArgument          an argument is malformed (ARC003)
    │   └── InsecureSetting      a secret setting holds a placeholder or an empty password (ARC010)
    ├── NotFound                 a record/transfer does not exist (ARC004, exit 1)
    ├── Unhealthy                a health check (`archive health …`) failed (ARC011, exit 1)
    ├── Conflict                 e.g. an archive code registered twice (ARC005, exit 1)
    └── RejectedInput            a transfer was refused; carries its problems (exit 1)
"""

from __future__ import annotations

from typing import Any


class ArchiveError(Exception):
    code = "ARC000"
    exit_code = 1

    def __init__(self, zh: str, en: str, **details: Any) -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message_zh": self.zh,
            "message_en": self.en,
            **{k: str(v) for k, v in self.details.items()},
        }

    def __str__(self) -> str:
        return f"{self.code}: {self.zh} / {self.en}"


class UsageError(ArchiveError):
    code = "ARC003"
    exit_code = 2


class NotInitialised(UsageError):
    code = "ARC001"

    def __init__(self, home: object) -> None:
        super().__init__(
            f"{home} 尚未初始化，请先运行 archive init",
            f"{home} is not initialised; run 'archive init' first",
            home=home,
        )


class UnknownArchive(UsageError):
    code = "ARC002"

    def __init__(self, archive: str) -> None:
        super().__init__(
            f"档案馆代码 {archive} 未登记（archive archives add）",
            f"No archive with code {archive} (see 'archive archives add')",
            archive=archive,
        )


class BadArgument(UsageError):
    code = "ARC003"


class NotFound(ArchiveError):
    code = "ARC004"


class Conflict(ArchiveError):
    code = "ARC005"


class RejectedInput(ArchiveError):
    code = "ARC006"


class InsecureSetting(UsageError):
    """A secret-bearing setting still holds a placeholder (``change-me``) or an empty password.

    The message names the variable and never repeats its value."""

    code = "ARC010"

    def __init__(self, variable: str, problem_zh: str, problem_en: str) -> None:
        super().__init__(
            f"{variable} {problem_zh}：请设置真实的密码（docker compose 读取 .env）；"
            "仅开发环境（ARCHIVE_ENV=development）接受占位值",
            f"{variable} {problem_en}: set a real secret (docker compose reads it from .env); "
            "only ARCHIVE_ENV=development accepts placeholders",
            variable=variable,
        )


class Unhealthy(ArchiveError):
    """A health check found a component not serving (the portal, a worker)."""

    code = "ARC011"

    def __init__(self, component: str, reason_zh: str, reason_en: str) -> None:
        super().__init__(
            f"{component} 不健康：{reason_zh}",
            f"{component} is not healthy: {reason_en}",
            component=component,
        )


# -- OAI-PMH provider and harvester (issue 10; messages also in archive/codes/oai.toml) -------------------


class OaiError(ArchiveError):
    """An OAI-PMH protocol error, answered inside a 200 OAI-PMH document (``oai_code`` is the spec's code)."""

    code = "OAI000"
    oai_code = "badArgument"

    def __init__(self, zh: str, en: str, **details: Any) -> None:
        super().__init__(zh, en, **details)


class OaiBadVerb(OaiError):
    code = "OAI001"
    oai_code = "badVerb"


class OaiBadArgument(OaiError):
    code = "OAI002"
    oai_code = "badArgument"


class OaiBadResumptionToken(OaiError):
    code = "OAI003"
    oai_code = "badResumptionToken"

    def __init__(self, en_reason: str = "invalid") -> None:
        super().__init__(
            "续传令牌无效或已过期，请重新开始收割",
            f"The resumption token is {en_reason}; start the list again",
            reason=en_reason,
        )


class OaiCannotDisseminateFormat(OaiError):
    code = "OAI004"
    oai_code = "cannotDisseminateFormat"

    def __init__(self, prefix: str) -> None:
        super().__init__(
            f"不提供元数据格式 {prefix}（可用 ListMetadataFormats 查询）",
            f"Metadata format {prefix!r} is not offered (see ListMetadataFormats)",
            prefix=prefix,
        )


class OaiIdDoesNotExist(OaiError):
    code = "OAI005"
    oai_code = "idDoesNotExist"

    def __init__(self, identifier: str) -> None:
        super().__init__(
            "本库没有该标识符的记录",
            "No record with this identifier in this repository",
            identifier=identifier,
        )


class OaiNoRecordsMatch(OaiError):
    code = "OAI006"
    oai_code = "noRecordsMatch"

    def __init__(self) -> None:
        super().__init__("没有符合条件的记录", "No records match the request")


class OaiNoSetHierarchy(OaiError):
    """Kept for completeness: this repository has sets, so it never answers this code."""

    code = "OAI007"
    oai_code = "noSetHierarchy"


class HarvestError(ArchiveError):
    """A harvest of a peer's OAI-PMH repository failed (unreachable, not OAI-PMH, an OAI error)."""

    code = "OAI010"


class HarvestSourceExists(Conflict):
    code = "OAI011"

    def __init__(self, url: str) -> None:
        super().__init__(f"已登记收割来源 {url}", f"Harvest source {url} is already registered", url=url)


class UnknownHarvestSource(UsageError):
    code = "OAI012"

    def __init__(self, url: str) -> None:
        super().__init__(f"没有收割来源 {url}", f"No harvest source {url}", url=url)
