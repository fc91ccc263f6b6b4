"""Reading a page's form POST (``application/x-www-form-urlencoded``) without a multipart dependency."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from fastapi import Request

MAX_FORM_BYTES = 4096  # a page's button sends a few short fields


class FormError(ValueError):
    """The POST is not a small urlencoded form: the page answers 400 with this message."""


async def read_form(request: Request) -> dict[str, str]:
    """The form's fields (first value of each); :class:`FormError` unless a small urlencoded form."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise FormError("send the page's form (application/x-www-form-urlencoded)")
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise FormError(f"form too large (over {MAX_FORM_BYTES} bytes)")
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError("the form is not valid urlencoded UTF-8") from exc
    return {k: v[0] for k, v in parsed.items()}
