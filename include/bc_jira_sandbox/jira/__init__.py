"""Jira Cloud platform REST v3 emulation: fields, issues, bulk create, edit, JQL search, transitions,
comments, users and dynamic webhooks, under ``/ex/jira/{cloudId}`` (OAuth bearer) and ``/site`` (basic
auth).

Fidelity notes (https://developer.atlassian.com/cloud/jira/platform/rest/v3/): search lags writes by
``options.search_lag_s`` unless ``reconcileIssues`` names the issue; ``nextPageToken`` paging with no
``total``; ``fields`` defaults to ``id``; bulk create answers 201 with per-element ``errors`` (400 only when
all fail); ADF is validated; some users hide their email; REST (dynamic) webhooks expire after 30 days.
Delivery authentication follows the kind of webhook
(https://developer.atlassian.com/cloud/jira/platform/webhooks/): a webhook the OAuth 2.0 app registered
through ``POST /rest/api/3/webhook`` is delivered with only ``Authorization: Bearer <JWT>`` (HS256, the app's
client secret); an admin webhook (``POST /_sandbox/jira/admin-webhooks``, as an admin creates one in Settings
> System > WebHooks) carries only ``X-Hub-Signature: sha256=<hex>`` when created with a secret, nothing
otherwise. Every body matches the official OpenAPI document; ``POST /_sandbox/jira/options {"validate":
true}`` makes the sandbox check it.
"""
