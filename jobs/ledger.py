"""The lake lock and the run ledger's life cycle: running → succeeded | failed, and abandoned for dead drivers.

The lock is one row (lock = 'lake') of the Delta table `locks`, taken with a MERGE: Delta's optimistic
concurrency lets only one of two racing MERGEs commit, so it works on object storage and in a metastore alike
(no local file locks). The holder refreshes `heartbeat_at` every `storage.heartbeat_s`; a row whose heartbeat is
older than `storage.stale_after_s` belongs to a dead driver and may be taken over. Holding the lock, a run knows
every other `running` row in `runs` is a dead driver's and marks it `abandoned`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

from pyspark.sql import Window
from pyspark.sql import functions as F

from refinery.schemas.tables import LOCKS, RUNS

from .config import PipelineConfig
from .storage import Lakehouse, sql_merge

log = logging.getLogger("refinery")
LOCK_KEY = "lake"
_held: dict[str, _Lock] = {}  # lake root -> this process's lock, so nested runs (pipeline → stage) re-enter
# lake root -> stage -> its newest ledger rows, read once per lock hold (see stage_runs)
_ledgers: dict[str, dict[str, list]] = {}
_LEDGER_ROWS = 1000  # per stage: how far back a watermark is looked for


class LakeBusy(RuntimeError):
    """Another run holds the lake lock; the message names it."""


def kill_point(name: str) -> None:
    """Test hook: REFINERY_KILL_AT=<name> SIGKILLs the driver here (crash-recovery tests and bench).

    In a Python worker REFINERY_DRIVER_PID names the driver, so a kill "during extraction" hits the driver while
    its tasks run. `<name>@N` kills at the N-th time the point is reached in this process."""
    wanted = os.environ.get("REFINERY_KILL_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] < int(nth or 1):
        return
    pid = int(os.environ.get("REFINERY_DRIVER_PID") or os.getpid())
    os.kill(pid, signal.SIGKILL)
    os._exit(137)  # a worker that killed its driver goes too; the driver never gets here


_hits: dict[str, int] = {}


def worker_kill_once(name: str) -> None:
    """Test hook for executor loss: REFINERY_WORKER_KILL_ONCE=<name>:<marker file> SIGKILLs the Python worker
    that reaches the point first (the marker makes it once per test), so Spark must retry its task."""
    wanted = os.environ.get("REFINERY_WORKER_KILL_ONCE")
    if not wanted or not wanted.startswith(f"{name}:"):
        return
    try:
        os.close(os.open(wanted[len(name) + 1:], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


class _Lock:
    def __init__(self, lake: Lakehouse, config: PipelineConfig, holder: str):
        self.lake, self.cfg, self.holder = lake, config.storage, holder
        self.depth = 0
        self._stop = threading.Event()
        self._writing = threading.Lock()
        self._thread: threading.Thread | None = None

    def _row(self, stage: str):
        now = datetime.now(UTC)
        owner = f"{socket.gethostname()}:{os.getpid()}"
        return self.lake.spark.createDataFrame([(LOCK_KEY, self.holder, stage, owner, now, now)], LOCKS.schema)

    def acquire(self, stage: str) -> None:
        deadline = time.monotonic() + self.cfg.lock_timeout_s
        table = self.lake.qualified(LOCKS.name)
        dead = ""  # holder of a lock whose driver is known dead (same host, no such process)
        while True:
            stale = f"t.heartbeat_at < current_timestamp() - INTERVAL {int(self.cfg.stale_after_s)} SECONDS"
            try:
                sql_merge(self.lake.spark, table, self._row(stage), "t.lock = s.lock", [
                    f"WHEN MATCHED AND (t.holder = s.holder OR t.holder = '{dead}' OR {stale}) THEN UPDATE SET *",
                    "WHEN NOT MATCHED THEN INSERT *"])
            except Exception as err:  # noqa: BLE001 - a racing MERGE lost Delta's conflict check: look again
                if "Concurrent" not in type(err).__name__ and "Concurrent" not in str(err):
                    raise
            row = self.lake.read(LOCKS.name).where(F.col("lock") == LOCK_KEY).first()
            if row is not None and row.holder == self.holder:
                break
            if row is not None and row.holder != dead and _dead_here(row.owner):
                dead = row.holder  # a driver on this machine that no longer exists: take over at once
                continue
            busy = self._busy(row) if row is not None else "the lake lock is contended"
            if self.cfg.concurrent_runs == "fail" or time.monotonic() > deadline:
                raise LakeBusy(f"{busy}; wait for it to finish, or set storage.concurrent_runs=wait with "
                               f"storage.lock_timeout_s (a dead driver's lock is taken over after "
                               f"storage.stale_after_s={self.cfg.stale_after_s:g}s)")
            log.info("%s; waiting", busy)
            time.sleep(2.0)
        self._thread = threading.Thread(target=self._beat, name="refinery-lock-heartbeat", daemon=True)
        self._thread.start()

    def _busy(self, row) -> str:
        """Names the run in progress: the holder's `running` ledger row(s), its driver and heartbeat."""
        running = [f"{r.run_id} (stage {r.stage})" for r in self.lake.read(RUNS.name)
                   .where(F.col("status") == "running").select("run_id", "stage").limit(3).collect()]
        what = f"run {', '.join(running)}" if running else f"a run starting with stage {row.stage}"
        return (f"the lake {self.lake.root} is in use by {what}: driver {row.owner}, lock holder {row.holder} since "
                f"{row.acquired_at:%Y-%m-%d %H:%M:%S} UTC, last heartbeat {row.heartbeat_at:%H:%M:%S} UTC")

    def _beat(self) -> None:
        while not self._stop.wait(self.cfg.heartbeat_s):
            try:
                with self._writing:
                    self.lake.spark.sql(f"UPDATE {self.lake.qualified(LOCKS.name)} SET heartbeat_at = "
                                        f"current_timestamp() WHERE lock = '{LOCK_KEY}' AND holder = '{self.holder}'")
            except Exception as err:  # noqa: BLE001 - a missed beat is retried; staleness needs several
                log.warning("lake lock heartbeat failed: %s", err)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.lake.spark.sql(f"DELETE FROM {self.lake.qualified(LOCKS.name)} "
                            f"WHERE lock = '{LOCK_KEY}' AND holder = '{self.holder}'")


def _dead_here(owner: str | None) -> bool:
    """The lock's driver ran on this host and its process is gone (drivers elsewhere: the heartbeat decides)."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def lake_lock(lake: Lakehouse, config: PipelineConfig, stage: str):
    """Hold the lake for this process (re-entrant); on first entry mark dead drivers' `running` rows abandoned."""
    lock = _held.get(lake.root)
    if lock is None:
        lake.create(LOCKS)
        lake.create(RUNS)
        lock = _Lock(lake, config, uuid.uuid4().hex)
        lock.acquire(stage)
        _held[lake.root] = lock
        try:
            mark_abandoned(lake)
        except BaseException:
            _held.pop(lake.root)
            lock.release()
            raise
    lock.depth += 1
    try:
        yield lock
    finally:
        lock.depth -= 1
        if lock.depth == 0:
            _held.pop(lake.root, None)
            _ledgers.pop(lake.root, None)
            lock.release()


def stage_runs(lake: Lakehouse, stage: str) -> list:
    """The stage's newest ledger rows (status, settings_digest, input_versions, output_versions), newest first.

    While this process holds the lake lock, one read serves every stage of the pipeline (a read of `runs` costs
    a second or more, a stage's fixed cost): nobody else writes, and a stage's rows change only by its own run,
    which reads them before it completes and then forgets them (forget_stage_runs)."""
    held = lake.root in _held
    if held and lake.root in _ledgers:
        return _ledgers[lake.root].get(stage, [])
    newest = F.row_number().over(Window.partitionBy("stage").orderBy(F.col("started_at").desc()))
    rows = (lake.read(RUNS.name).withColumn("_n", newest).where(F.col("_n") <= _LEDGER_ROWS).orderBy("_n")
            .select("stage", "status", "settings_digest", "input_versions", "output_versions").collect())
    by_stage: dict[str, list] = {}
    for row in rows:
        by_stage.setdefault(row.stage, []).append(row)
    if held:
        _ledgers[lake.root] = by_stage
    return by_stage.get(stage, [])


def forget_stage_runs(lake: Lakehouse, stage: str) -> None:
    """A stage's run completed: its ledger rows changed, so the next read of them goes to the table."""
    _ledgers.get(lake.root, {}).pop(stage, None)


def mark_abandoned(lake: Lakehouse) -> int:
    """`running` rows left by drivers that died (we hold the lock, so no live run has one)."""
    allow_running_rows(lake)
    stale = lake.read(RUNS.name).where(F.col("status") == "running").count()
    if stale:
        lake.spark.sql(f"UPDATE {lake.qualified(RUNS.name)} SET status = 'abandoned', ended_at = current_timestamp(), "
                       "error = 'driver gone: the driver of the run died (no lock heartbeat) before it finished; the "
                       "next run resumed its work from the tables and staging' WHERE status = 'running'")
        log.warning("marked %d run(s) abandoned", stale)
    return stale


def allow_running_rows(lake: Lakehouse) -> None:
    """A lake written before the `running` state has runs.ended_at NOT NULL; a running row has no end yet."""
    if not lake.read(RUNS.name).schema["ended_at"].nullable:
        lake.spark.sql(f"ALTER TABLE {lake.qualified(RUNS.name)} ALTER COLUMN ended_at DROP NOT NULL")


def commit_tag(run_id: str) -> str:
    """userMetadata of every commit a run makes: how output versions are found in Delta's history."""
    return f"refinery-run:{run_id}"


def committed_version(lake: Lakehouse, table: str, run_id: str) -> int | None:
    """The newest version of `table` committed by this run (from the commit log, not 'latest after commit')."""
    row = (lake.history(table, 50).where(F.col("userMetadata") == commit_tag(run_id))
           .agg(F.max("version").alias("v")).first())
    return None if row is None or row.v is None else int(row.v)
