"""Airflow hooks for Business Central and Jira Cloud.

Importing them teaches Airflow's secrets masker our secret connection extras (``client_state`` matches none
of its names), so a task's log masks them from the first connection fetch on (``bc_jira.secret_fields``).
"""

from __future__ import annotations

from bc_jira.secret_fields import register_with_airflow

register_with_airflow()
