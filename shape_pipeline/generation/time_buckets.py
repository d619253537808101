"""Rows set aside by time bucket in Arrow IPC files: the spill of an external sort by time.

Generation yields rows conversation by conversation, each chunk spanning the whole window, so
no table can be written in time order before the last chunk. Sorting every row at once would
need the whole dataset in memory (or the database's sort, which writes each wide row twice).
So each chunk is cut at fixed time edges (the window in equal parts, from the planned row
count alone: about `ROWS_PER_BUCKET` rows each, whatever the data), each part appended to its
bucket's file, and at the end the buckets are read back one at a time, in time order: only one
bucket (sorted in memory) is held at once. Times before the window go to the first bucket,
after it to the last.

A bucket file is a run of IPC streams, one per appended part, so parts may differ in their
columns (a column left to the server's default in one chunk) and no file stays open between
appends. The folder is a private temporary one, removed by `close` (after the
load, on an error, Ctrl-C or SIGTERM) and each bucket file as soon as it has been read.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from shape_pipeline.generation.columns import int64s

ROWS_PER_BUCKET = 250_000  # a sorted bucket of messages holds some 30-60 MB: memory stays flat


def bucket_edges(start_us: int, end_us: int, expected_rows: int) -> np.ndarray:
    """The interior edges (µs) cutting [start, end) into equal buckets of about ROWS_PER_BUCKET
    expected rows each (none for a table expected to fit in one bucket)."""
    count = max(1, math.ceil(expected_rows / ROWS_PER_BUCKET))
    return np.linspace(start_us, end_us, count + 1)[1:-1].astype(np.int64)


def split(table: pa.Table, times_us: np.ndarray, edges: np.ndarray) -> list[tuple[int, pa.Table]]:
    """`table` cut into its buckets, as (bucket, rows) in bucket order (row order kept within each)."""
    bucket = np.searchsorted(edges, times_us, side="right")
    if bucket.size == 0:
        return []
    if (bucket == bucket[0]).all():
        return [(int(bucket[0]), table)]
    order = np.argsort(bucket, kind="stable")
    counts = np.bincount(bucket, minlength=edges.size + 1)
    taken = table.take(int64s(order))
    starts = np.concatenate(([0], np.cumsum(counts)))
    return [(b, taken.slice(int(starts[b]), int(counts[b]))) for b in np.flatnonzero(counts).tolist()]


class BucketFiles:
    """The spill folder: `append` parts, then `read` each bucket once, in order; `close` removes it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="shape-pipeline-sort-"))

    def path(self, name: str, bucket: int) -> Path:
        return self.folder / f"{name}-{bucket:06d}.arrows"

    def append(self, name: str, table: pa.Table, times_us: np.ndarray, edges: np.ndarray) -> None:
        """Append the rows of `table` (of table `name`) to their buckets' files, cut at `edges`."""
        for bucket, rows in split(table, times_us, edges):
            with pa.OSFile(str(self.path(name, bucket)), "ab") as sink, pa.ipc.new_stream(sink, rows.schema) as writer:
                writer.write_table(rows)

    def buckets(self, name: str) -> list[int]:
        """The buckets of table `name` that hold rows, in time order."""
        return sorted(int(p.stem.rsplit("-", 1)[1]) for p in self.folder.glob(f"{name}-*.arrows"))

    def read(self, name: str, bucket: int) -> pa.Table:
        """Every row appended to the bucket (a column missing from some parts is NULL there);
        the file is removed."""
        path = self.path(name, bucket)
        with pa.memory_map(str(path)) as source:
            data = source.read_buffer()
        path.unlink()
        reader, tables = pa.BufferReader(data), []
        while reader.tell() < data.size:
            tables.append(pa.ipc.open_stream(reader).read_all())
        return pa.concat_tables(tables, promote_options="permissive")

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
