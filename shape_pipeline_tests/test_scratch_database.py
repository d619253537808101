"""The throw-away databases of the tests and benchmarks are created, reachable, then dropped."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shape_pipeline.db import create_engine
from shape_pipeline.errors import ShapePipelineError
from shape_pipeline.scratch_database import ScratchServer
from shape_pipeline.settings import scratch_server_url


def test_a_scratch_database_exists_inside_and_is_dropped_after() -> None:
    server = ScratchServer(scratch_server_url())
    try:
        with server.database("sp_scratch_check") as url:
            name = str(sa.make_url(url).database)
            assert name.startswith("sp_scratch_check_") and server.exists(name)
            engine = create_engine(url, poolclass=sa.pool.NullPool)
            with engine.connect() as conn:  # an open connection does not stop the drop (FORCE)
                assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == name
                conn.execute(sa.text("CREATE TABLE t (x int)"))
                conn.commit()
                server.drop(name)
            engine.dispose()
        assert not server.exists(name)
        with pytest.raises(ShapePipelineError, match="lower-case letters"):
            server.create('x"; DROP DATABASE postgres; --')
    finally:
        server.close()
