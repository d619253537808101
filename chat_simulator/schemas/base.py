"""What every schema provides, and the small column helpers the renderers share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from chat_simulator.world import LogicalWorld


@dataclass(frozen=True)
class Schema:
    """A physical schema: its DDL, how the logical world becomes its rows, and the mapping a user
    of the project would write for it (YAML text; None where no mapping file is needed).

    `render` returns the users, conversations, members and messages tables in that order, row i
    of each rendering logical row i (`build_world` then puts them in insert order)."""

    name: str
    metadata: Callable[[], sa.MetaData]
    render: Callable[[LogicalWorld, np.random.Generator], dict[str, pa.Table]]
    mapping_yaml: str | None
    dialects: tuple[str, ...] = ("postgresql",)


def recode(values: pa.ChunkedArray | pa.Array, codes: Mapping[str, str | None]) -> pa.Array:
    """Logical category names -> physical codes (None becomes NULL)."""
    keys = list(codes)
    index = pc.index_in(values, value_set=pa.array(keys, pa.string()))
    if index.null_count:
        raise ValueError(f"no code for {sorted(set(pc.unique(values).to_pylist()) - set(keys))}")
    return pa.array(list(codes.values()), pa.string()).take(index)


def epoch_ms(values: pa.ChunkedArray | pa.Array, *, unset: int | None = None) -> pa.Array:
    """UTC timestamps as epoch milliseconds; NULL becomes `unset` when given."""
    out = pc.cast(values, pa.int64())
    return pc.fill_null(out, unset) if unset is not None else out


def empty_for_null(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """NOT NULL DEFAULT '' columns: the app stores '' for unset."""
    return pc.fill_null(values, "")


def by_index(ids: pa.Array, positions: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The id of each logical position (nulls stay null)."""
    return ids.take(positions)


def constant(value: object, n: int, type_: pa.DataType) -> pa.Array:
    return pa.array(np.full(n, value) if type_ != pa.string() else [value] * n, type_)


def chance(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    return rng.random(n) < share
