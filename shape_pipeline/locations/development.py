"""The `development` code location: calibrate -> generate -> validate, sensors and alerts.

`shape_metrics` is declared here by key only (the production boundary materializes it), so
the UI shows one lineage across both locations. Each area owns its Dagster definitions in its
own module; this module only composes them.
"""

from __future__ import annotations

import dagster as dg

from shape_pipeline.locations import calibration_assets, fidelity_assets, generation_assets
from shape_pipeline.locations.executors import executor_from_env
from shape_pipeline.locations.resources import development_target_from_env

AREAS = (calibration_assets, generation_assets, fidelity_assets)


def _all(name: str) -> list:
    return [item for area in AREAS for item in getattr(area, name)]


def definitions() -> dg.Definitions:
    """The location's definitions, on the executor the environment names (`executors`)."""
    return dg.Definitions(
        assets=_all("ASSETS"),
        asset_checks=_all("ASSET_CHECKS"),
        sensors=_all("SENSORS"),
        jobs=_all("JOBS"),
        schedules=_all("SCHEDULES"),
        resources={"development": development_target_from_env()},
        executor=executor_from_env(),
    )


defs = definitions()
