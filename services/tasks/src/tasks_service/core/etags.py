"""Strong ETags from the task version, and `If-Match` (RFC 9110 strong comparison)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from taskgate_common.errors import ApiError

_ENTITY_TAG = re.compile(r'^"(\d{1,18})"$')
_MAX_VERSION = 2**31 - 1  # the `version` column is an INTEGER


def etag(version: int) -> str:
    return f'"{version}"'


@dataclass(frozen=True)
class IfMatch:
    """A parsed `If-Match`: `*`, or the versions it names. Weak or foreign tags match nothing."""

    any_version: bool
    versions: frozenset[int]

    @classmethod
    def parse(cls, header: str | None) -> IfMatch | None:
        if header is None:
            return None
        tags = [tag.strip() for tag in header.split(",") if tag.strip()]
        if "*" in tags:
            return cls(any_version=True, versions=frozenset())
        versions = {int(match.group(1)) for tag in tags if (match := _ENTITY_TAG.match(tag))}
        return cls(any_version=False, versions=frozenset(versions))

    def allows(self, version: int) -> bool:
        return self.any_version or version in self.versions

    def storable_versions(self) -> list[int] | None:
        """The versions a row may have for this to match (None: any), as the database can
        hold them (a tag beyond the version column's range can never match)."""
        if self.any_version:
            return None
        return sorted(version for version in self.versions if version <= _MAX_VERSION)


def check_if_match(if_match: IfMatch | None, version: int, what: str) -> None:
    """The one precondition rule of tasks, boards and columns: 412 `version_mismatch` with the
    current ETag unless `If-Match` is absent or names `version`."""
    if if_match is not None and not if_match.allows(version):
        raise ApiError(
            412,
            "version_mismatch",
            f"The {what} changed since you read it (If-Match does not match); reload and retry",
            {"ETag": etag(version)},
        )
