"""A PostgreSQL backend for MLSKit: one table, one transaction per batch.

For Python services (bots, server-side members, a Delivery Service's own
member) that keep state in a server database. Every process can keep its
clients' state in one shared database, one table (or one `name`) per client.

    pool = psycopg_pool.ConnectionPool("host=/run/postgresql dbname=app", open=True)
    store = PostgresStorage(pool, table="mlskit_alice")
    store.create_table()
    client = mlskit.Client(store, b"alice")

Needs `psycopg` (3.x, with `psycopg-binary` or a system libpq) and
`psycopg-pool`. Tested by `bindings/python/tests/test_postgres.py`
(`make test-postgres`, part of `make test`).

The contract (README "Storage: the whole contract"):
- `read` is one SELECT on a connection from the pool, outside any batch.
- `commit` runs the whole batch in one transaction on one connection: puts
  are upserts, deletes are deletes, in order; any error rolls everything
  back and is raised as `StorageError.Backend`, so MLSKit reloads and
  nothing is half-written. A process killed mid-batch leaves the previous
  state (PostgreSQL never commits a transaction its client did not finish).
- Thread-safe: each call takes its own connection from the pool.
- One live `Client` per table: MLSKit's store lease (a record in this table)
  makes a second client's open take the table over.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, List, Optional

import mlskit

if TYPE_CHECKING:  # the generated classes are untyped for mypy
    _StorageBase = object
else:
    _StorageBase = mlskit.StorageBackend

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresStorage(_StorageBase):
    """An MLSKit store in one PostgreSQL table `(key bytea primary key, value bytea)`."""

    def __init__(self, pool: Any, table: str = "mlskit_kv") -> None:
        if not _NAME.match(table):
            raise ValueError(f"not a plain table name: {table!r}")
        self.pool = pool
        self.table = table

    def create_table(self) -> None:
        """Creates the table if it does not exist (idempotent)."""
        with self.pool.connection() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(key bytea PRIMARY KEY, value bytea NOT NULL)"
            )

    def read(self, key: bytes) -> Optional[bytes]:
        try:
            with self.pool.connection() as conn:
                row = conn.execute(f"SELECT value FROM {self.table} WHERE key = %s", (bytes(key),)).fetchone()
        except Exception as e:  # the pool's or the server's failure
            raise mlskit.StorageError.Backend(f"postgres read failed: {e}") from e
        return None if row is None else bytes(row[0])

    def commit(self, writes: List[mlskit.StorageWrite]) -> None:
        try:
            with self.pool.connection() as conn:
                # The pool's `connection()` block is one transaction: it
                # commits at the end and rolls back on any exception.
                with conn.cursor() as cur:
                    for w in writes:
                        self._apply(cur, w)
                    self.before_commit(cur)
        except mlskit.StorageError:
            raise
        except Exception as e:
            raise mlskit.StorageError.Backend(f"postgres commit failed: {e}") from e

    def _apply(self, cur: Any, w: mlskit.StorageWrite) -> None:
        if isinstance(w, mlskit.StorageWrite.PUT):
            cur.execute(
                f"INSERT INTO {self.table} (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (bytes(w.key), bytes(w.value)),
            )
        elif isinstance(w, mlskit.StorageWrite.DELETE):
            cur.execute(f"DELETE FROM {self.table} WHERE key = %s", (bytes(w.key),))
        else:
            raise mlskit.StorageError.Backend(f"unknown write {type(w).__name__}")

    def before_commit(self, cur: Any) -> None:
        """Called inside the transaction after the batch's statements, before
        it commits: a hook for tests (fault injection, crash timing)."""
