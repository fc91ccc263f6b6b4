"""The connector's web pages and routes, served by the plugin app under ``/bc-jira``."""
