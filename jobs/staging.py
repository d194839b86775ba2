"""Durable intermediate results: staging Delta tables under the lake instead of executor-local checkpoints.

A stage stores what is expensive to recompute (scored rows, signature bands, LLM generations) in
`_staging_<stage>_<purpose>` (a path under storage.root, or a table in the metastore schema), reads it back
from there and commits from it. Each write carries a key (a digest of the settings and input versions) in its
Delta commit's userMetadata: a run killed after staging finds the same key and resumes from the stored rows
instead of recomputing them. Staging is dropped after the stage's successful commit.
"""

from __future__ import annotations

import os
import shutil

from delta.tables import DeltaTable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, MapType, StructField, StructType

from .classic import delete_hadoop_children, delete_hadoop_path, is_connect
from .storage import Lakehouse

GROUP = "_staging_group"  # appended staging (LLM generations): which write a row came from


class Staging:
    def __init__(self, lake: Lakehouse, stage: str, run_id: str):
        self.lake, self.stage, self.run_id = lake, stage, run_id
        self._cuts: list[str] = []

    def name(self, purpose: str) -> str:
        return f"_staging_{self.stage}_{purpose}"

    def key_of(self, purpose: str) -> str | None:
        """The key the staging table was written under, or None when there is none."""
        name = self.name(purpose)
        if not self.lake.exists(name):
            return None
        row = self.lake.history(name).select("userMetadata", "operation").first()
        # After drop: a DELETE (and VACUUM) commit, whose metadata is the run's tag, never a staging key.
        return None if row is None or row.operation.startswith(("DELETE", "VACUUM")) else row.userMetadata

    def snapshot(self, purpose: str, df: DataFrame, key: str) -> tuple[DataFrame, bool]:
        """df stored once under key and read back; (rows, resumed) where resumed means an earlier run stored them.

        Overwrite is one Delta commit, so the table holds all of a snapshot or the previous one, never a part."""
        if self.key_of(purpose) == key:
            return self.lake.read(self.name(purpose)), True
        self._write(purpose, df, key, "overwrite")
        return self.lake.read(self.name(purpose)), False

    def resumable(self, purpose: str, key: str) -> DataFrame | None:
        """Rows appended under key by an earlier run (e.g. generations whose commit it did not reach)."""
        if self.key_of(purpose) != key:
            return None
        return self.lake.read(self.name(purpose))

    def append(self, purpose: str, df: DataFrame, key: str, group: str) -> DataFrame:
        """Append df as one group under key (replacing rows of another key) and read that group back."""
        mode = "append" if self.key_of(purpose) == key else "overwrite"
        self._write(purpose, df.withColumn(GROUP, F.lit(group)), key, mode)
        return self.lake.read(self.name(purpose)).where(F.col(GROUP) == group).drop(GROUP)

    def _write(self, purpose: str, df: DataFrame, key: str, mode: str) -> None:
        name = self.lake.qualified(self.name(purpose)) if self.lake.cfg.metastore else None
        _store(self.lake.spark, df, mode, name=name, path=None if name else self.lake.path(self.name(purpose)),
               key=key)

    def cut(self, purpose: str, df: DataFrame) -> DataFrame:
        """A lineage cut that survives executor loss (a localCheckpoint's blocks die with their executor): df
        written for this run only (never resumed) and read back. Path lakes keep cuts under
        `<root>/_staging/<run_id>/` (Parquet, or Delta where the schema needs declaring), removed in one go by
        drop_cuts; a metastore gets `_staging_<stage>_<purpose>_<run>` tables, dropped one by one."""
        if self.lake.cfg.metastore:
            name = self.lake.qualified(f"{self.name(purpose)}_{self.run_id[:12]}")
            _store(self.lake.spark, df, "overwrite", name=name)
            self._cuts.append(name)
            return self.lake.spark.read.table(name)
        path = f"{self._cut_root()}/{self.stage}_{purpose}"
        if _nested_not_null(df.schema):  # Delta declares the exact schema, which a MERGE target may need
            _store(self.lake.spark, df, "overwrite", path=path)
            return self.lake.spark.read.format("delta").load(path)
        # Otherwise plain Parquet: read back, it has the schema a Delta write would give (top-level nullable),
        # without a transaction log, statistics or a commit per cut (dedup cuts once per components round).
        df.write.mode("overwrite").parquet(path)
        # The schema given: Spark would otherwise run a job to read it back from the files' footers.
        return self.lake.spark.read.schema(df.schema).parquet(path)

    def _cut_root(self) -> str:
        return self.lake.path(f"_staging/{self.run_id}")

    def drop_cuts(self) -> None:
        for name in self._cuts:
            self.lake.spark.sql(f"DROP TABLE IF EXISTS {name}")
        self._cuts.clear()
        if not self.lake.cfg.metastore:
            _remove_tree(self.lake.spark, self._cut_root())

    def drop(self, *purposes: str) -> None:
        """After the successful commit: the staged rows are in the tables, so staging goes."""
        for purpose in purposes:
            name = self.name(purpose)
            if not self.lake.exists(name):
                continue
            if self.lake.cfg.metastore:
                self.lake.spark.sql(f"DROP TABLE IF EXISTS {self.lake.qualified(name)}")
                continue
            # A DELETE commit first: from then on key_of finds no key, so nothing resumes from this table even if
            # the driver dies before the files go. Then the data files go directly (the log stays: a few KB),
            # since VACUUM costs tens of seconds even on a tiny table; no run reads staging but its own, and
            # this one holds the lake lock.
            table = self.lake.qualified(name)
            self.lake.spark.sql(f"DELETE FROM {table}")
            if not remove_data_files(self.lake.spark, self.lake.path(name)):
                self._vacuum(table)  # over Spark Connect: no file system access from here

    def _vacuum(self, table: str) -> None:
        check = "spark.databricks.delta.retentionDurationCheck.enabled"
        self.lake.spark.conf.set(check, "false")
        try:
            self.lake.spark.sql(f"VACUUM {table} RETAIN 0 HOURS").collect()
        finally:
            self.lake.spark.conf.unset(check)


def remove_data_files(spark, path: str) -> bool:
    """Remove everything in a path table's folder but its `_delta_log`; False where it cannot (Spark Connect on a
    Hadoop URI). Only for a table whose head version references no files (after DELETE FROM)."""
    if "://" not in path or path.startswith("file:"):
        folder = path.removeprefix("file:")
        for entry in os.scandir(folder):
            if entry.name == "_delta_log":
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        return True
    return delete_hadoop_children(spark, path, keep="_delta_log")


def _remove_tree(spark, path: str) -> None:
    """Remove a folder of per-run cuts: a local path directly, a Hadoop URI through the session's FileSystem
    (Classic only: over Spark Connect the folder stays for `refinery maintain`)."""
    if "://" not in path or path.startswith("file:"):
        shutil.rmtree(path.removeprefix("file:"), ignore_errors=True)
        return
    delete_hadoop_path(spark, path)


def _store(spark, df: DataFrame, mode: str, name: str | None = None, path: str | None = None,
           key: str | None = None) -> None:
    """Overwrite: the table is (re)declared with df's exact schema first, then df written over it, because a plain
    DataFrame write relaxes nested nullability (array<string NOT NULL> becomes array<string>) and the target
    tables' MERGE then refuses the staged rows. The key rides on the data commit, the last one."""
    if mode == "overwrite" and not is_connect(spark):
        builder = DeltaTable.createOrReplace(spark).addColumns(_declarable(df.schema))
        (builder.tableName(name) if name else builder.location(path)).execute()
    # Overwrite, not append, after the declaration: replacing a table at a location keeps its files live.
    writer = df.write.format("delta").mode(mode)
    if mode == "overwrite" and is_connect(spark):
        # No DeltaTable builder over Connect: the write declares the schema. The lake's tables were created the
        # same way there (Lakehouse.create), so their nullability matches and MERGE accepts the rows.
        writer = writer.option("overwriteSchema", "true")
    if key is not None:
        writer = writer.option("userMetadata", key)
    if name:
        writer.saveAsTable(name)
    else:
        writer.save(path)


def _nested_not_null(kind, nested: bool = False) -> bool:
    """Whether a plain write would relax the schema (a NOT NULL inside a struct, array or map): only then is a
    per-run path cut a declared Delta table."""
    if isinstance(kind, StructType):
        return any((nested and not f.nullable) or _nested_not_null(f.dataType, True) for f in kind.fields)
    if isinstance(kind, ArrayType):
        return not kind.containsNull or _nested_not_null(kind.elementType, True)
    if isinstance(kind, MapType):
        return (not kind.valueContainsNull or _nested_not_null(kind.keyType, True)
                or _nested_not_null(kind.valueType, True))
    return False


def _declarable(kind, in_collection: bool = False):
    """df's schema as Delta can declare it: NOT NULL struct fields inside arrays or maps (which Delta refuses) are
    relaxed; everything else, including array<string NOT NULL>, is kept."""
    if isinstance(kind, StructType):
        return StructType([StructField(f.name, _declarable(f.dataType, in_collection), f.nullable or in_collection,
                                       f.metadata) for f in kind.fields])
    if isinstance(kind, ArrayType):
        return ArrayType(_declarable(kind.elementType, True), kind.containsNull)
    if isinstance(kind, MapType):
        return MapType(_declarable(kind.keyType, True), _declarable(kind.valueType, True), kind.valueContainsNull)
    return kind
