"""Jira Cloud platform REST v3 emulation."""
