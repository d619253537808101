"""Sequential user ids numbered in the order users join conversations.

In an app with a user sequence, people sign up and join their first conversations soon after,
so memberships, written as people join, carry rising user ids: production's
`pg_stats.correlation` of members.user_id is high (0.6 in the simulated worlds), and the
planner prices a user's memberships by index scan where random ids would get a bitmap scan.
The generator draws users apart from conversation times, so when the config asks for it
(`users_in_join_order`, set by calibration from production's correlation) the load renumbers
users at commit: rank by mean join time (users who never join last, ties by logical id; the
mean gave 0.51 against production's 0.60 on the simulated canonical world, the first join
0.38, since a user's memberships spread over the window). The rows
are all set aside until then (`time_buckets`), so renumbering is a lookup on each written
bucket; users' creation times are reassigned in the new order, so ids still follow sign-up.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shape_pipeline.generation import staging
from shape_pipeline.generation.schema_writer import TableWriter


class JoinOrder:
    """Join times per logical user, summed while rows are set aside; then new ids."""

    def __init__(self, users: int) -> None:
        self.total = np.zeros(users, dtype=np.float64)  # sum of join times (µs)
        self.count = np.zeros(users, dtype=np.int64)
        self._numbers: np.ndarray | None = None

    def see(self, members: pa.Table) -> None:
        """Take note of one set-aside chunk of memberships (order columns: joined µs, conversation, user)."""
        joined = members.column(staging.ORDER_COLUMNS[0]).to_numpy()
        user = members.column(staging.ORDER_COLUMNS[2]).to_numpy() - 1
        np.add.at(self.total, user, joined.astype(np.float64))
        np.add.at(self.count, user, 1)

    def numbers(self) -> np.ndarray:
        """New id of each logical user (index: logical id - 1), 1-based, in mean-join order."""
        if self._numbers is None:
            mean = np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.inf)
            order = np.lexsort((np.arange(mean.size), mean))
            self._numbers = np.empty(order.size, dtype=np.int64)
            self._numbers[order] = np.arange(1, order.size + 1, dtype=np.int64)
        return self._numbers

    def renumber(self, rows: pa.Table, column: str) -> pa.Table:
        """`rows` with the user ids in `column` replaced by their new numbers."""
        values = rows.column(column)
        new = pa.array(self.numbers()[values.to_numpy() - 1]).cast(values.type)
        return rows.set_column(rows.column_names.index(column), column, new)

    def users(self, writer: TableWriter, rows: pa.Table, created_column: str) -> pa.Table:
        """All users renumbered; each new id takes the creation time (physical value and order
        key) the old numbering gave that id, so ids still rise with sign-up time."""
        logical = rows.column(staging.ORDER_COLUMNS[1]).to_numpy()
        by_logical = rows.take(pc.sort_indices(rows.column(staging.ORDER_COLUMNS[1])))
        new = self.numbers()[logical - 1]
        position = pa.array(new - 1)
        rows = self.renumber(rows, str(writer.id_column))
        for name in (created_column, staging.ORDER_COLUMNS[0]):
            rows = rows.set_column(rows.column_names.index(name), name, by_logical.column(name).take(position))
        return rows.set_column(
            rows.column_names.index(staging.ORDER_COLUMNS[1]), staging.ORDER_COLUMNS[1], pa.array(new)
        )
