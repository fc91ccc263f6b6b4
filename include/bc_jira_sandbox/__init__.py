"""Local emulator of BC API v2.0, Entra ID, Atlassian OAuth and Jira REST v3.

For the demo, the tests and the benchmarks only: production code never imports it.
"""

from __future__ import annotations
