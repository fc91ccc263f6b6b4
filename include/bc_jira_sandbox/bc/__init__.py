"""Business Central API v2.0 emulation."""
