"""``make bench``: the connector's throughput, API economy and memory against the sandbox."""

from __future__ import annotations
