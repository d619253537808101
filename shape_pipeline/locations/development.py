"""The `development` code location: calibrate -> generate -> validate, sensors and alerts.

`shape_metrics` is declared here by key only (the production boundary materializes it), so
the UI shows one lineage across both locations. Each area module owns one small
`dg.Definitions` (its assets, checks, sensors, jobs and schedules); this module only merges
them with the location's resources and executor.
"""

from __future__ import annotations

import dagster as dg

from shape_pipeline.locations import (
    calibration_assets,
    fidelity_alerts,
    fidelity_assets,
    generation_assets,
)
from shape_pipeline.locations.executors import executor_from_env
from shape_pipeline.locations.resources import development_target_from_env

AREAS: tuple[dg.Definitions, ...] = (
    calibration_assets.defs,
    generation_assets.defs,
    fidelity_assets.defs,
    fidelity_alerts.defs,
)


def definitions() -> dg.Definitions:
    """The location's definitions, on the executor the environment names (`executors`)."""
    return dg.Definitions.merge(
        *AREAS,
        dg.Definitions(
            resources={"development": development_target_from_env()},
            executor=executor_from_env(),
        ),
    )


defs = definitions()
