"""Airflow hooks for Business Central and Jira Cloud."""

from __future__ import annotations
