"""The tests' PostgreSQL server: `make test` starts one (scripts/postgres.sh) and names it.

Every PostgreSQL test reads the server from COORDINATION_TEST_POSTGRES; this checks the
server `make test` started is there and usable, so a broken install shows up here, by name.
"""

from __future__ import annotations

import os

import pytest

URL = os.environ.get("COORDINATION_TEST_POSTGRES")

pytestmark = pytest.mark.skipif(
    URL is None, reason="no test server: run `make test` (it starts one) or set it yourself"
)


def test_the_test_server_takes_a_transaction() -> None:
    psycopg = pytest.importorskip("psycopg")
    assert URL is not None
    with psycopg.connect(URL, connect_timeout=10) as connection:
        (version,) = connection.execute("show server_version_num").fetchone() or (0,)
        assert int(version) >= 130000  # what the PostgreSQL store will need
        connection.execute("create temporary table probe (n int)")
        connection.execute("insert into probe values (1), (2)")
        assert connection.execute("select sum(n) from probe").fetchone() == (3,)
