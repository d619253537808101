"""Every convention of the pipeline written once: asset keys, file names, defaults, bands.

Standard library only: the production location, the CLI's parser and the Dagster locations
all import it, so it must pull in nothing else.
"""

from __future__ import annotations

from datetime import datetime

# --- Dagster asset keys (as strings; the locations wrap them in dg.AssetKey) -----------------
SHAPE_METRICS = "shape_metrics"  # production's aggregate shape, materialized by the production location
CALIBRATED_CONFIG = "calibrated_config"  # generator parameters fitted to a shape
SYNTHETIC_DATASET = "synthetic_dataset"  # the generated users, conversations, members, messages
FIDELITY_REPORT = "fidelity_report"  # the GO/NO-GO comparison of synthetic and production shapes

# --- File names: <prefix>YYYYMMDD.json (a same-day second shape file adds -HHMMSS) -----------
DAY_STAMP = "%Y%m%d"  # the date part of every file name
SECOND_STAMP = "%Y%m%d-%H%M%S"  # the date and time part of a same-day second shape file
SHAPE_PREFIX = "shape-metrics-prod-"  # shape files: shape-metrics-prod-YYYYMMDD.json
SHAPE_GLOB = f"{SHAPE_PREFIX}*.json"  # every shape file in a folder
CONFIG_PREFIX = "calibrated-config-"  # calibrated configs: calibrated-config-YYYYMMDD.json
CONFIG_GLOB = f"{CONFIG_PREFIX}*.json"  # every calibrated config in a folder
REPORT_PREFIX = "fidelity-report-"  # fidelity reports: fidelity-report-YYYYMMDD.json (+ .html)
REPORT_GLOB = f"{REPORT_PREFIX}*.json"  # every fidelity report (JSON) in a folder
SHAPE_PLACEHOLDER = f"{SHAPE_PREFIX.rstrip('-')}.json"  # a shape file's name in example commands
CONFIG_PLACEHOLDER = f"{CONFIG_PREFIX.rstrip('-')}.json"  # a config's name in example commands
REPORT_PLACEHOLDER = f"{REPORT_PREFIX.rstrip('-')}.json"  # a report's name in example commands

# --- Defaults ---------------------------------------------------------------------------------
DEFAULT_WINDOW_DAYS = 30  # days in the sampling window
DEFAULT_MIN_CELL_COUNT = 10  # suppression mode: smallest count exported as its own cell
DEFAULT_TOLERANCE = 0.15  # fidelity: effect-size tolerance (0.15 = 15%)
DEFAULT_STATEMENT_TIMEOUT_MS = 600_000  # PostgreSQL statement_timeout per query (10 minutes)

# --- Generation bands: named dataset sizes in messages ---------------------------------------
BANDS: dict[str, int] = {"dev": 500_000, "pilot": 5_000_000, "perf": 50_000_000}  # name -> messages
BAND_NAMES: tuple[str, ...] = tuple(BANDS)  # ("dev", "pilot", "perf"), smallest first
DEFAULT_BAND = "dev"  # the band generated when neither a band nor a size is given


def shape_file_name(when: datetime, *, with_time: bool = False) -> str:
    """`shape-metrics-prod-YYYYMMDD.json` (`with_time`: `-YYYYMMDD-HHMMSS`, a same-day second file)."""
    return f"{SHAPE_PREFIX}{when.strftime(SECOND_STAMP if with_time else DAY_STAMP)}.json"


def config_file_name(when: datetime) -> str:
    """`calibrated-config-YYYYMMDD.json`."""
    return f"{CONFIG_PREFIX}{when.strftime(DAY_STAMP)}.json"


def report_file_name(when: datetime, suffix: str = ".json") -> str:
    """`fidelity-report-YYYYMMDD.json` (or `.html`)."""
    return f"{REPORT_PREFIX}{when.strftime(DAY_STAMP)}{suffix}"
