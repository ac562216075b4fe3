"""The PostgreSQL example backend (examples/postgres_storage.py) against a real,
throwaway PostgreSQL server started from Debian's packages for this module:
the scenario with a restart, every failing-commit case of test_storage.py,
several threads on one pool, and a process killed in the middle of a batch."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any, Iterator, List, Optional

import mlskit
import pytest

from conftest import CLIENT_OPTIONS, SRC, assert_in_sync, commit_and_deliver, make_trio, process_app
from test_storage import CASES, run_failing_case

EXAMPLES = str(Path(__file__).resolve().parent.parent / "examples")
sys.path.insert(0, EXAMPLES)

import psycopg  # noqa: E402
import psycopg_pool  # noqa: E402
from postgres_storage import PostgresStorage  # noqa: E402


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    assert found, f"{name} not found: `make setup` installs Debian's postgresql"
    return found


class Server:
    """A PostgreSQL cluster in a temp folder, on a Unix socket only."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="mlskit-pg-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        # initdb refuses to run as root: the cluster then belongs to `postgres`.
        self.as_user: List[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.dir, 0o700)
        self._run(pg_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(
            pg_bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
            "-o", f"-k {self.dir} -c listen_addresses='' -c max_connections=50", "start",
        )
        os.chmod(self.dir, 0o711)  # the socket is reachable, the data folder is not
        self.conninfo = f"host={self.dir} user=postgres dbname=postgres"
        self.tables = 0

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def pool(self, size: int = 4) -> Any:
        return psycopg_pool.ConnectionPool(self.conninfo, min_size=1, max_size=size, open=True)

    def new_table(self) -> str:
        self.tables += 1
        return f"mlskit_t{self.tables}"

    def stop(self) -> None:
        self._run(pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def pool(server: Server) -> Iterator[Any]:
    p = server.pool(8)
    try:
        yield p
    finally:
        p.close()


def table_digest(pool: Any, table: str) -> str:
    with pool.connection() as conn:
        rows = conn.execute(f"SELECT key, value FROM {table} ORDER BY key").fetchall()
    h = hashlib.sha256()
    for k, v in rows:
        h.update(len(k).to_bytes(4, "big") + bytes(k) + len(v).to_bytes(4, "big") + bytes(v))
    return h.hexdigest()


class FailingPostgres(PostgresStorage):
    """The example backend with the test hooks test_storage.py's cases use:
    the next commit fails (inside its transaction, after its statements ran)."""

    def __init__(self, pool: Any, table: str) -> None:
        super().__init__(pool, table)
        self.create_table()
        self.fail_reason: Optional[str] = None
        self.failures = 0

    def fail_next_commit(self, reason: str, plain_exception: bool = False) -> None:
        self.fail_reason = reason

    def before_commit(self, cur: Any) -> None:
        if self.fail_reason is not None:
            reason, self.fail_reason = self.fail_reason, None
            self.failures += 1
            raise mlskit.StorageError.Backend(reason)

    def snapshot(self) -> str:
        return table_digest(self.pool, self.table)


def test_scenario_with_a_restart(server: Server, pool: Any) -> None:
    tables = [server.new_table() for _ in range(3)]

    def store(i: int) -> FailingPostgres:
        return FailingPostgres(pool, tables[i])

    made = iter(range(3))
    t = make_trio(lambda: store(next(made)))
    for g in t.groups:
        msg = g.encrypt(b"hello over postgres", b"")
        for other in t.groups:
            if other is not g:
                assert process_app(other, msg).plaintext == b"hello over postgres"
    commit_and_deliver(t.bob, t.bob.self_update(), [t.alice, t.carol])
    gid = t.alice.id()
    alice, carol = t.alice, t.carol
    # Restart bob from the database, through a new pool (another process would do the same).
    del t.groups[1], t.clients[1]
    with server.pool(2) as fresh:
        bob = mlskit.Client(PostgresStorage(fresh, tables[1]), b"bob", CLIENT_OPTIONS)
        gb = bob.group(gid)
        assert_in_sync([alice, gb, carol])
        del gb, bob


@pytest.mark.parametrize("name", sorted(CASES))
def test_failed_commit_changes_nothing_then_retry_succeeds(server: Server, pool: Any, name: str) -> None:
    run_failing_case(name, lambda: FailingPostgres(pool, server.new_table()))


def test_several_threads_on_one_pool(server: Server, pool: Any) -> None:
    made = iter(range(3))
    tables = [server.new_table() for _ in range(3)]
    t = make_trio(lambda: FailingPostgres(pool, tables[next(made)]))
    groups = [t.alice]
    for _ in range(2):  # two more groups between the same clients
        g = t.clients[0].create_group()
        bundle = g.add_members([c.create_key_packages(1)[0] for c in t.clients[1:]])
        g.merge_pending_commit()
        assert bundle.welcome is not None
        for c in t.clients[1:]:
            c.join_group(bundle.welcome)
        groups.append(g)
    sent: List[List[bytes]] = [[] for _ in groups]
    errors: List[BaseException] = []

    def send(i: int) -> None:
        try:
            for n in range(15):
                sent[i].append(groups[i].encrypt(f"group {i} message {n}".encode(), b""))
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(groups))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    for i, g in enumerate(groups):
        receiver = t.clients[1].group(g.id())
        for n, msg in enumerate(sent[i]):
            assert process_app(receiver, msg).plaintext == f"group {i} message {n}".encode()


CHILD = textwrap.dedent(
    """
    import hashlib, sys, time
    sys.path[:0] = [{src!r}, {examples!r}]
    import mlskit, psycopg_pool
    from postgres_storage import PostgresStorage

    conninfo, ta, tb, gid = sys.argv[1], sys.argv[2], sys.argv[3], bytes.fromhex(sys.argv[4])
    pool = psycopg_pool.ConnectionPool(conninfo, min_size=1, max_size=2, open=True)

    def digest(table):
        with pool.connection() as conn:
            rows = conn.execute(f"SELECT key, value FROM {{table}} ORDER BY key").fetchall()
        h = hashlib.sha256()
        for k, v in rows:
            h.update(len(k).to_bytes(4, "big") + bytes(k) + len(v).to_bytes(4, "big") + bytes(v))
        return h.hexdigest()

    class Slow(PostgresStorage):
        armed = False
        def commit(self, writes):
            if Slow.armed:
                print("BEFORE", self.table, digest(self.table), flush=True)
            super().commit(writes)
        def before_commit(self, cur):
            if Slow.armed:
                print("MID", flush=True)  # the batch's statements ran, not committed
                time.sleep(60)

    alice = mlskit.Client(Slow(pool, ta), b"alice")
    bob = mlskit.Client(Slow(pool, tb), b"bob")
    ga, gb = alice.group(gid), bob.group(gid)
    for n in range(5):
        gb.process_message(ga.encrypt(b"warm up %d" % n, b""))
    Slow.armed = True
    bundle = ga.self_update()  # killed inside this batch
    print("NOT KILLED", flush=True)
    """
)


def test_a_process_killed_mid_batch_leaves_the_state_before_it(server: Server, pool: Any) -> None:
    ta, tb = server.new_table(), server.new_table()
    sa, sb = PostgresStorage(pool, ta), PostgresStorage(pool, tb)
    sa.create_table()
    sb.create_table()
    alice = mlskit.Client(sa, b"alice")
    bob = mlskit.Client(sb, b"bob")
    ga = alice.create_group()
    bundle = ga.add_members(bob.create_key_packages(1))
    ga.merge_pending_commit()
    assert bundle.welcome is not None
    gid = ga.id()
    bob.join_group(bundle.welcome)
    epoch = ga.epoch()
    del ga, alice, bob

    script = CHILD.format(src=SRC, examples=EXAMPLES)
    child = subprocess.Popen(
        [sys.executable, "-c", script, server.conninfo, ta, tb, gid.hex()],
        stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    before = None
    for line in child.stdout:
        if line.startswith("BEFORE"):
            before = line.split()[2]
        if line.startswith("MID"):
            os.kill(child.pid, signal.SIGKILL)
            break
        assert not line.startswith("NOT KILLED"), "the child was never inside a batch"
    child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert before is not None
    # PostgreSQL drops the killed client's open transaction: the table is as
    # it was before the batch, byte for byte.
    deadline = 50
    while table_digest(pool, ta) != before and deadline:
        deadline -= 1
        threading.Event().wait(0.1)
    assert table_digest(pool, ta) == before, "a killed batch left part of itself"
    # The restarted members agree and talk; alice's interrupted update is simply redone.
    alice = mlskit.Client(PostgresStorage(pool, ta), b"alice")
    bob = mlskit.Client(PostgresStorage(pool, tb), b"bob")
    ga, gb = alice.group(gid), bob.group(gid)
    assert ga.epoch() == gb.epoch() == epoch
    assert ga.pending_commit() is None
    commit_and_deliver(ga, ga.self_update(), [gb])
    assert_in_sync([ga, gb])
