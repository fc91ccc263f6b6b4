"""The live edges: where BC and Jira call us (intake), how we keep them calling (subscriptions, webhooks),
how DAGs wake on what they sent (triggers) and what the health route reports (health)."""
