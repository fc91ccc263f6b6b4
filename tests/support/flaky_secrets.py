"""A custom Airflow secrets backend that fails on demand, to test what the connector does when Airflow cannot
read a connection (a secrets manager down).

Configure it as ``[secrets] backend`` with ``backend_kwargs = {"conns": "<json file>", "flag": "<file>"}``.
It serves the connections in the JSON file (conn id -> Airflow connection JSON), as a secrets manager would.
While the flag file exists, every lookup of a connection id listed in it (whitespace-separated) raises
``ConnectionError``. Airflow itself logs that at debug level and reports the connection as "not defined".
"""

from __future__ import annotations

import json
from pathlib import Path

from airflow.secrets.base_secrets import BaseSecretsBackend


class FlakySecretsBackend(BaseSecretsBackend):
    def __init__(self, conns: str = "", flag: str = "", **kwargs: object) -> None:
        super().__init__()
        self.conns = Path(conns) if conns else None
        self.flag = Path(flag) if flag else None

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        if self.flag is not None and self.flag.exists() and conn_id in self.flag.read_text().split():
            raise ConnectionError(f"secrets backend unreachable (test flag {self.flag})")
        if self.conns is None or not self.conns.exists():
            return None
        value = json.loads(self.conns.read_text()).get(conn_id)
        return json.dumps(value) if value is not None else None

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        return None
