"""A rich progress bar for long stages run from a terminal: fed by Spark's status tracker (Classic) or by the
server's progress messages (Connect); it shows nothing, quietly, where neither is available."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from pyspark.sql import SparkSession

from .classic import is_connect, status_tracker


@contextmanager
def spark_progress(spark: SparkSession, description: str, enabled: bool = True):
    if not enabled:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True) as progress:
        task = progress.add_task(description, total=None)

        def show(stages) -> None:
            done = sum(s.num_completed_tasks for s in stages)
            total = sum(s.num_tasks for s in stages)
            if total:
                progress.update(task, completed=done, total=total)

        with _connect_feed(spark, show) if is_connect(spark) else _tracker_feed(spark, show):
            yield


@contextmanager
def _connect_feed(spark: SparkSession, show):
    def handler(stages, inflight_tasks, operation_id, done) -> None:
        show(list(stages or []))

    try:
        spark.registerProgressHandler(handler)
    except Exception:  # noqa: BLE001 - progress is polish: a client without handlers just shows no bar
        yield
        return
    try:
        yield
    finally:
        spark.removeProgressHandler(handler)


@contextmanager
def _tracker_feed(spark: SparkSession, show):
    tracker = status_tracker(spark)
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            stages = [info for stage_id in tracker.getActiveStageIds()
                      if (info := tracker.getStageInfo(stage_id)) is not None]
            show([_Stage(s.numTasks, s.numCompletedTasks) for s in stages])

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join(timeout=2)


class _Stage:
    __slots__ = ("num_tasks", "num_completed_tasks")

    def __init__(self, num_tasks: int, num_completed_tasks: int) -> None:
        self.num_tasks, self.num_completed_tasks = num_tasks, num_completed_tasks
