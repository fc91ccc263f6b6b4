"""Pages a person looks at: the sandbox Jira's board and issue pages, and BC web client pages.

Plain server-rendered HTML, every value escaped, one small form POST per button; the buttons call the same
sandbox functions as the REST API and the ``/_sandbox`` control routes, so a click fires the same Jira
webhooks and BC notifications. The pages are a person's browser, not an API client: they bypass the
sandbox's injected faults, rate limits and call stats (:func:`is_page`).
"""

from __future__ import annotations

SITE = "/site"  # the Jira site's root (its REST API with basic auth lives under it too)
BC_WEB = "/bc-web"  # the BC web client (``bc_web_client_url`` of the sandbox's bc_jira_config)
_PAGE_PREFIXES = (
    f"{SITE}/browse/",
    f"{SITE}/jira/",
    f"{SITE}/issues",
    f"{SITE}/secure/attachment/",
    BC_WEB,
)


def is_page(path: str) -> bool:
    """True for a page route (the middleware lets these through untouched)."""
    return path in (SITE, f"{SITE}/") or path.startswith(_PAGE_PREFIXES)
