"""Several companies in one BC environment: their ids and names, lookup by id or name, access checks.

A BC environment holds several companies; ``GET .../api/v2.0/companies`` lists them and every entity lives
under ``companies({id})/...`` (Learn ``dev-itpro/api-reference/v2.0/api/dynamics_company_get.md``;
``dev-itpro/developer/devenv-connect-apps-tips.md``: "All resources live in the context of a parent
company"). Webhook subscriptions are environment-level (``POST .../api/v2.0/subscriptions``) and name their
company in ``resource`` (Learn ``api-reference/v2.0/dynamics-subscriptions.md``), so the sandbox keeps one
:class:`~bc_jira_sandbox.bc.state.BcState` per company and shares the subscriptions and pending
notifications among them. Company 1 is ``creds["company_id"]`` ("CRONUS DK") with the data the sandbox
always had; further companies get deterministic ids and their own seeded data (own random stream).

Errors (Learn ``dev-itpro/webservices/dynamics-error-codes.md``, "Error messages and error codes"):
- an unknown or deleted company: 404 ``Internal_CompanyNotFound`` (NavCompanyNotFoundException);
- a company the principal has no permission in: 403 (``include-http-status-error-codes.md``: "403
  Forbidden ... some kind of access restriction policy") with ``Authorization_InsufficientPermissions``
  (the ``Authorization_*`` family: "The authenticated identity doesn't have the correct permissions";
  code listed in Learn ``api-reference/v1.0/dynamics_error_codes.md``). [inference] the message text, and
  that a company without permission is still listed by ``GET companies``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from bc_jira_sandbox.bc.entities import BcError, _bad

if TYPE_CHECKING:
    from bc_jira_sandbox.bc.state import BcState
    from bc_jira_sandbox.core import Sandbox

# (name, displayName): the CRONUS demo companies of BC's localisations (Learn's sample: "CRONUS US",
# "CRONUS USA, Inc."); company 1 keeps the sandbox's historic Danish one.
PROFILES = [
    ("CRONUS DK", "CRONUS Danmark A/S"),
    ("CRONUS US", "CRONUS USA, Inc."),
    ("CRONUS CA", "CRONUS Canada, Inc."),
    ("CRONUS GB", "CRONUS UK Ltd."),
    ("CRONUS DE", "CRONUS AG"),
    ("CRONUS NL", "CRONUS Nederland BV"),
    ("CRONUS SE", "CRONUS Sverige AB"),
    ("CRONUS NO", "CRONUS Norge AS"),
]
MAX_COMPANIES = 50


def profile(index: int) -> tuple[str, str]:
    """(name, displayName) of the company at ``index`` (0-based)."""
    if index < len(PROFILES):
        return PROFILES[index]
    return f"CRONUS {index + 1:02d}", f"CRONUS Company {index + 1}"


def company_id(sb: Sandbox, index: int) -> str:
    """Company 1 is ``creds["company_id"]``; the others derive from the tenant (same seed, same ids)."""
    if index == 0:
        return sb.creds["company_id"]
    return str(uuid.uuid5(uuid.UUID(sb.creds["tenant_id"]), f"company-{index}"))


def check_count(n: int) -> int:
    if not 1 <= n <= MAX_COMPANIES:
        raise _bad(f"companies must be between 1 and {MAX_COMPANIES}")
    return n


def build(sb: Sandbox, n: int) -> list[BcState]:
    """``sb.bc`` (company 1, already reset) plus ``n - 1`` fresh companies sharing its subscriptions."""
    from bc_jira_sandbox.bc.state import BcState

    first = sb.bc
    states = [first]
    for index in range(1, check_count(n)):
        state = BcState(sb, index)
        state.subscriptions = first.subscriptions
        state.pending = first.pending
        states.append(state)
    return states


def not_found(key: str) -> BcError:
    return BcError(
        404,
        "Internal_CompanyNotFound",
        f"Cannot process the request because the company '{key}' cannot be found.",
    )


def find(sb: Sandbox, key: str | None) -> BcState:
    """The company named by id or name (case-insensitive; None: company 1); deleted ones are not found."""
    if key is None or key == "":
        return sb.bc
    want = str(key).strip("'").lower()
    for state in sb.bc_companies:
        if not state.deleted and want in (state.company["id"].lower(), state.company["name"].lower()):
            return state
    raise not_found(str(key))


def for_api(sb: Sandbox, key: str) -> BcState:
    """The company of an API path or a subscription resource, after BC's existence and permission checks."""
    state = find(sb, key)
    if state.revoked:
        raise BcError(
            403,
            "Authorization_InsufficientPermissions",
            f"You do not have permission to access company '{state.company['name']}'. Ask your administrator "
            "to assign permission sets to the application in this company.",
        )
    return state


def listed(sb: Sandbox) -> list[BcState]:
    return [s for s in sb.bc_companies if not s.deleted]
