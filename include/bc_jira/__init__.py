"""bc-jira: sync Microsoft Dynamics 365 Business Central documents with Jira Cloud issues."""

from __future__ import annotations

__version__ = "0.1.0"
