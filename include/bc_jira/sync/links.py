"""The upsert task's operator: a TaskFlow ``@task`` with two extra links (the batch's issues, its audit rows).

Why an operator class of our own: a plain ``@task`` is ``_PythonDecoratedOperator`` for every task of every
DAG, so it cannot carry links of its own. How Airflow 3.3 resolves extra links (read in its source):

* the worker, when the task ends (success or failure), calls ``get_link`` of every link in the operator's
  ``operator_extra_links`` and pushes the answer as an XCom named ``link.xcom_key``
  (``sdk/execution_time/task_runner.py``, ``finalize``);
* the serialized DAG keeps only ``{link name: xcom key}`` (``_serialize_operator_extra_links``), and the
  api-server answers ``GET /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/links?map_index=N`` from
  that XCom of that mapped task instance (``XComOperatorLink``): no plugin and no import of this module there.

Chosen over a plugin's ``global_operator_extra_links``, which every task of every DAG would list, and whose
``get_link`` would run in the api-server on each page view. The task stores what the links need on the
operator instance (:func:`set_batch_links`), which is the object ``finalize`` passes to ``get_link`` in the
same process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseOperatorLink
from airflow.sdk.bases.decorator import DecoratedOperator, task_decorator_factory

from bc_jira.sync import report

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow.sdk import BaseOperator
    from airflow.sdk.bases.decorator import TaskDecorator
    from airflow.sdk.types import TaskInstanceKey

JIRA_LINK_NAME = "Jira: batch issues"
AUDIT_LINK_NAME = "bc-jira audit: batch"
_STASH = "_bc_jira_links"  # attribute of the operator instance, set by the running task


def ui_base_url() -> str:
    """Where the Airflow UI is (``[api] base_url``); empty: links are relative to the page that shows them."""
    try:
        from airflow.configuration import conf

        value = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # noqa: BLE001 - no config readable: a relative link still works in the UI
        value = ""
    return value.rstrip("/")


class JiraBatchIssuesLink(BaseOperatorLink):
    """The Jira issue navigator with every issue of this batch (``key in (...)``)."""

    name = JIRA_LINK_NAME

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return str(getattr(operator, _STASH, {}).get("jira") or "")


class AuditBatchLink(BaseOperatorLink):
    """The audit page filtered to the rows this task instance wrote (works for a failed batch too)."""

    name = AUDIT_LINK_NAME

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        map_index = getattr(ti_key, "map_index", None)
        return report.audit_batch_url(ui_base_url(), ti_key.dag_id, ti_key.run_id, ti_key.task_id, map_index)


class BatchUpsertOperator(DecoratedOperator, PythonOperator):
    """``@task`` (same behaviour as Airflow's own) plus the batch's two extra links."""

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")
    custom_operator_name: str = "@task"
    operator_extra_links = (JiraBatchIssuesLink(), AuditBatchLink())

    def __init__(self, *, python_callable: Callable, op_args: Any, op_kwargs: Any, **kwargs: Any) -> None:
        kwargs_to_upstream = {"python_callable": python_callable, "op_args": op_args, "op_kwargs": op_kwargs}
        super().__init__(
            kwargs_to_upstream=kwargs_to_upstream,
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )


def batch_upsert_task(python_callable: Callable | None = None, **kwargs: Any) -> TaskDecorator:
    """``@batch_upsert_task(...)``: like ``@task(...)``, on :class:`BatchUpsertOperator`."""
    return task_decorator_factory(
        python_callable=python_callable, decorated_operator_class=BatchUpsertOperator, **kwargs
    )


def set_batch_links(operator: object, *, jira: str | None) -> None:
    """Called by the running task: what :class:`JiraBatchIssuesLink` answers when the task ends."""
    setattr(operator, _STASH, {"jira": jira})
