"""Secret scrubbing for anything that may reach a log line, an exception message or a page.

Server messages may echo what they were sent (a token, a client secret, an OAuth code); URLs carry codes and
signatures in their query. Everything the HTTP layer reports goes through here first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

# Query parameter names whose values must never be shown (OAuth codes, tokens, secrets, signatures).
_SECRET_PARAM = re.compile(r"token|secret|code|password|passwd|signature|sig$|assertion|api[_-]?key", re.I)
# Things that look like credentials inside free text (server messages may echo them).
_SECRET_TEXT = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}(\.[A-Za-z0-9_-]*)?"), "***jwt***"),
    (
        re.compile(
            r"(?i)((?:client_secret|refresh_token|access_token|password|code|validationToken)=)[^&\s\"']+"
        ),
        r"\1***",
    ),
    (re.compile(r"(?i)(\"(?:client_secret|refresh_token|access_token|password)\"\s*:\s*\")[^\"]*"), r"\1***"),
]


def redact_url(url: str) -> str:
    """Return the URL with secret-looking query values replaced by ``***`` and no userinfo."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if not parts.query:
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    safe = [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs]
    query = urlencode(safe, quote_via=quote, safe="$'(),:*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str, extra_secrets: tuple[str, ...] = ()) -> str:
    """Scrub bearer tokens, JWTs and ``secret=value`` fragments (plus any known secret values) from text."""
    for secret in extra_secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern, repl in _SECRET_TEXT:
        text = pattern.sub(repl, text)
    return text
