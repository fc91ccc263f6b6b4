"""Setup checks (bc_jira_connect)."""
