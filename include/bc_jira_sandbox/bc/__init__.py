"""Business Central API v2.0 emulation: companies, vendors, purchase invoices/orders (+ lines), subscriptions.

Fidelity notes (https://learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/):
- Field names, JSON types and enum member names come from ``bc-api-v2-entities.json`` (the vendored
  BC API v2.0 field list); enums use the EDM encoding (blank -> ``_x0020_``, ``In_x0020_Review``).
- OData: ``$filter`` (eq/ne/gt/ge/lt/le, and/or/not, parentheses; DateTimeOffset literals unquoted, a quoted
  datetime is rejected like ODataLib does), ``$select``, ``$orderby``, ``$top``, ``$skip``, ``$expand``,
  server paging (default and maximum 20,000 per page, ``Prefer: odata.maxpagesize``, key-based
  ``$skiptoken`` in ``@odata.nextLink``, so a record modified mid-scan moves instead of shifting pages).
- ``@odata.etag`` per record; PATCH needs ``If-Match`` (missing -> 400 BadRequest_InvalidToken, stale -> 412
  Request_EntityChanged). ``Microsoft.NAV.post`` posts drafts only, keeps the id, assigns a posted number,
  status Open; BC's dialog errors for non-drafts, blocked vendors, missing vendor invoice no., no lines.
- Subscriptions: handshake on create and renew (POST, or GET with ``/_sandbox/bc/options``: Microsoft does not
  document the method), renewal only with the documented body (the subscription's own ``notificationUrl`` and
  ``resource``, optional ``clientState``), 3-day expiry, notifications batched per notificationUrl after
  ``notify_delay_s``, ``updated`` merged per record, null updates dropped, ``collection`` over 1,000 changes,
  retries on no answer/408/429/5xx with BC's per-attempt delays (scaled by notify_delay_s / 30 s),
  deletion after 5 failed attempts or on any other answer (e.g. a plain 4xx).
- [inference] codes with no source: unknown environment -> 404 ``NoEnvironment``; unsupported webhook resource
  and failed handshake -> 400 ``BadRequest``.
"""
