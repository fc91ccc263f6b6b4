"""The ``attachments`` section of ``bc_jira_config``: which of the vendor's files go onto the Jira issue."""

from __future__ import annotations

import fnmatch
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # 10 MB per file; larger files get a comment with the BC link instead
MAX_MAX_BYTES = 1024 * 1024 * 1024
DEFAULT_ALLOWED_TYPES = (
    "application/pdf",
    "image/*",
    "text/plain",
    "text/csv",
    "application/xml",
    "text/xml",
)
# BC API v2.0 exposes a purchase invoice's files through both; some environments have only the older one
# (https://learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/resources/dynamics_attachment).
SOURCES = ("documentAttachments", "attachments")
_KEYS = {"enabled", "max_bytes", "allowed_types", "source"}
_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*/(\*|[a-z0-9][a-z0-9.+-]*)$")


@dataclass(frozen=True)
class AttachmentsConfig:
    enabled: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES
    allowed_types: tuple[str, ...] = DEFAULT_ALLOWED_TYPES
    source: str = "documentAttachments"

    def mime_type(self, file_name: str) -> str:
        """The file's type as Jira will see it (by its name: BC records no content type)."""
        return mimetypes.guess_type(file_name)[0] or "application/octet-stream"

    def allows(self, file_name: str) -> bool:
        kind = self.mime_type(file_name)
        return any(fnmatch.fnmatchcase(kind, pattern) for pattern in self.allowed_types)


def parse_attachments(value: Any, problems: list[str]) -> AttachmentsConfig:
    """The section, or the defaults; every problem appended with its key path and the fix."""
    if value is None:
        return AttachmentsConfig()
    if not isinstance(value, Mapping):
        problems.append('attachments: must be an object such as {"enabled": true, "max_bytes": 10485760}')
        return AttachmentsConfig()
    for key in sorted(set(value) - _KEYS):
        problems.append(f"attachments.{key}: unknown key; allowed keys are {', '.join(sorted(_KEYS))}")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"attachments.enabled: {enabled!r} must be true or false")
        enabled = True
    max_bytes = value.get("max_bytes", DEFAULT_MAX_BYTES)
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or not 1 <= max_bytes <= MAX_MAX_BYTES:
        problems.append(
            f"attachments.max_bytes: {max_bytes!r} must be a whole number of bytes from 1 to {MAX_MAX_BYTES} "
            f"(default {DEFAULT_MAX_BYTES} = 10 MB); larger files get a comment with the BC link instead"
        )
        max_bytes = DEFAULT_MAX_BYTES
    return AttachmentsConfig(
        enabled=enabled,
        max_bytes=max_bytes,
        allowed_types=_types(value.get("allowed_types", list(DEFAULT_ALLOWED_TYPES)), problems),
        source=_source(value.get("source", "documentAttachments"), problems),
    )


def _types(value: Any, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        problems.append(
            'attachments.allowed_types: must be a list of MIME types, e.g. ["application/pdf", "image/*"]'
        )
        return DEFAULT_ALLOWED_TYPES
    out = []
    for i, raw in enumerate(value):
        kind = raw.strip().lower()
        if kind != "*/*" and not _MIME_RE.match(kind):
            problems.append(
                f"attachments.allowed_types[{i}]: {raw!r} is not a MIME type; write it as type/subtype "
                '("application/pdf"), type/* ("image/*") or */* for every type'
            )
            continue
        out.append(kind)
    return tuple(out)


def _source(value: Any, problems: list[str]) -> str:
    if value not in SOURCES:
        problems.append(
            f"attachments.source: {value!r} must be one of {', '.join(SOURCES)} (attachments: environments "
            "whose API has only the older Incoming Document attachments)"
        )
        return "documentAttachments"
    return str(value)
