"""Which executor runs the development location's steps, chosen by configuration, not code.

`SHAPE_PIPELINE_EXECUTOR` = `multiprocess` (the default, Dagster's own: one process per step on
this machine; run config may still pick `in_process`),
`k8s` (`dagster-k8s`'s `k8s_job_executor`: one Kubernetes job per step) or `celery`
(`dagster-celery`'s `celery_executor`: steps as Celery tasks on workers). The integration
libraries are extras (`pip install 'shape-pipeline[k8s]'` or `[celery]`) pinned to the release
that pairs with the pinned core (0.29.27 <-> 1.13.27). Their settings (namespace, image,
broker) are run config: the files under `deploy/`, passed with `-c` or pasted in the launchpad.
With partitions staged by separate runs, any of them generates the perf band across machines.
"""

from __future__ import annotations

import importlib
import os

import dagster as dg

from shape_pipeline import settings
from shape_pipeline.errors import ShapePipelineError

EXECUTORS = ("multiprocess", "k8s", "celery")
DEFAULT_EXECUTOR = "multiprocess"
EXTRAS = {"k8s": ("dagster_k8s", "k8s_job_executor"), "celery": ("dagster_celery", "celery_executor")}


def executor_name() -> str:
    """The configured executor's name (one line naming the variable when it is not known)."""
    name = (os.environ.get(settings.EXECUTOR) or DEFAULT_EXECUTOR).strip().lower()
    if name not in EXECUTORS:
        raise ShapePipelineError(
            f"{settings.EXECUTOR}: unknown executor {name!r} (expected one of {', '.join(EXECUTORS)})"
        )
    return name


def executor_from_env() -> dg.ExecutorDefinition:
    """The executor definition the development location's jobs run on."""
    name = executor_name()
    if name == "multiprocess":
        return dg.multi_or_in_process_executor
    module, attribute = EXTRAS[name]
    try:
        library = importlib.import_module(module)
    except ImportError as exc:
        raise ShapePipelineError(
            f"{settings.EXECUTOR}={name}: {module} is not installed (pip install 'shape-pipeline[{name}]')"
        ) from exc
    return getattr(library, attribute)
