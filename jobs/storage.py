"""Where tables live (a path root or a metastore schema) and the few Delta operations stages use."""

from __future__ import annotations

import os
import uuid

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from refinery.schemas.tables import TABLES, TableSpec

from .classic import is_connect
from .config import StorageConfig

# Every table: a change data feed (stages read only what changed since their watermark), deletion vectors (MERGE
# updates mark rows instead of rewriting files) and optimized writes (fewer, larger files per commit).
TABLE_PROPERTIES = {
    "delta.enableChangeDataFeed": "true",
    "delta.enableDeletionVectors": "true",
    "delta.autoOptimize.optimizeWrite": "true",
}
# Delta's own floor for VACUUM: readers and writers of older versions may still need files younger than this.
SAFETY_RETENTION_HOURS = 168
_CHANGED = ("insert", "update_postimage")
_CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
# (root or schema, table) this process already created or migrated: later stages skip the DESCRIBE DETAIL
_current: set[tuple[str, str]] = set()


class Lakehouse:
    def __init__(self, spark: SparkSession, cfg: StorageConfig):
        self.spark = spark
        self.cfg = cfg
        # Delta rejects relative paths such as ./lakehouse/documents: anchor a local root at the cwd.
        self.root = cfg.root if "://" in cfg.root else os.path.abspath(os.path.expanduser(cfg.root))

    def path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def qualified(self, name: str) -> str:
        """How Spark SQL names the table: catalog.schema.name, or delta.`path`."""
        if self.cfg.metastore:
            return f"{self.cfg.metastore}.{name}"
        return f"delta.`{self.path(name)}`"

    def exists(self, name: str) -> bool:
        if self.cfg.metastore:
            return self.spark.catalog.tableExists(f"{self.cfg.metastore}.{name}")
        if not is_connect(self.spark):  # one JVM call (a few ms); resolving a missing table raises after ~0.1 s
            return DeltaTable.isDeltaTable(self.spark, self.path(name))
        try:  # over Connect, DataFrames: DeltaTable's Python API needs a Delta Connect plugin there
            _ = self.spark.read.format("delta").load(self.path(name)).schema  # resolves the table, reads no data
        except AnalysisException:
            return False
        return True

    def create(self, spec: TableSpec) -> None:
        """Declare the table from its schema if it does not exist yet (never implicitly on write); a table an
        older release created is migrated to the spec instead (see `migrate`)."""
        mark = (self.cfg.metastore or self.root, spec.name)
        if self.exists(spec.name):
            if mark not in _current:
                self.migrate(spec)
                _current.add(mark)
            return
        _current.add(mark)
        if is_connect(self.spark):
            return self._create_remote(spec)
        builder = DeltaTable.createIfNotExists(self.spark).addColumns(spec.schema).comment(spec.description)
        if self.cfg.metastore:
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self.cfg.metastore}")
            builder = builder.tableName(self.qualified(spec.name))
        else:
            builder = builder.location(self.path(spec.name))
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        elif spec.cluster_by:
            builder = builder.clusterBy(*spec.cluster_by)
        for key, value in TABLE_PROPERTIES.items():
            builder = builder.property(key, value)
        builder.execute()

    def migrate(self, spec: TableSpec) -> list[str]:
        """Bring an existing table up to its spec: columns the spec gained (nullable; old rows read null), the
        table properties, and clustering keys. Returns what changed, e.g. ["add columns a, b", "properties"]."""
        changed = []
        have = {f.name.lower() for f in self.read(spec.name).schema.fields}
        missing = [f for f in spec.schema.fields if f.name.lower() not in have]
        if missing:
            columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}"
                                + (f" COMMENT '{_quote(f.metadata['comment'])}'" if f.metadata.get("comment") else "")
                                for f in missing)
            self.spark.sql(f"ALTER TABLE {self.qualified(spec.name)} ADD COLUMNS ({columns})")
            changed.append("add columns " + ", ".join(f.name for f in missing))
        detail = self.spark.sql(f"DESCRIBE DETAIL {self.qualified(spec.name)}").first()  # Connect-safe
        properties = detail["properties"] or {}
        stale = {k: v for k, v in TABLE_PROPERTIES.items() if properties.get(k) != v}
        if stale:
            pairs = ", ".join(f"'{k}' = '{v}'" for k, v in stale.items())
            self.spark.sql(f"ALTER TABLE {self.qualified(spec.name)} SET TBLPROPERTIES ({pairs})")
            changed.append("properties " + ", ".join(stale))
        clustered = list(detail["clusteringColumns"] or []) if "clusteringColumns" in detail.asDict() else []
        if spec.cluster_by and not detail["partitionColumns"] and clustered != list(spec.cluster_by):
            keys = ", ".join(f"`{c}`" for c in spec.cluster_by)
            self.spark.sql(f"ALTER TABLE {self.qualified(spec.name)} CLUSTER BY ({keys})")
            changed.append("cluster by " + ", ".join(spec.cluster_by))
        return changed

    def _create_remote(self, spec: TableSpec) -> None:
        """Over Spark Connect: an empty write of the schema (field comments ride in its metadata), then the
        table comment; mode "ignore" leaves a table created meanwhile alone."""
        if self.exists(spec.name):
            return
        empty = self.spark.createDataFrame([], spec.schema).write.format("delta").mode("ignore")
        if spec.partition_by:
            empty = empty.partitionBy(*spec.partition_by)
        if self.cfg.metastore:
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self.cfg.metastore}")
            empty.saveAsTable(self.qualified(spec.name))
        else:
            empty.save(self.path(spec.name))
        comment = spec.description.replace("'", "\\'")
        self.spark.sql(f"ALTER TABLE {self.qualified(spec.name)} SET TBLPROPERTIES ('comment' = '{comment}')")
        self.migrate(spec)  # table properties and clustering, as the classic path creates them

    def table(self, name: str) -> DeltaTable:
        """The DeltaTable handle (Spark Classic; stage code uses read/version/merge, which work over Connect)."""
        if self.cfg.metastore:
            return DeltaTable.forName(self.spark, self.qualified(name))
        return DeltaTable.forPath(self.spark, self.path(name))

    def read(self, name: str, version: int | None = None) -> DataFrame:
        """The table now, or its snapshot at `version` (a stage reads the versions its ledger row records)."""
        reader = self.spark.read.format("delta")  # not DeltaTable.toDF(): this works over Connect too
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.table(self.qualified(name)) if self.cfg.metastore else reader.load(self.path(name))

    def changes(self, name: str, after: int, upto: int) -> DataFrame:
        """Rows inserted or updated in versions after..upto (the change data feed), latest image per key, in the
        table's columns. Raises AnalysisException where the feed does not cover the range (CDF was off, or
        VACUUM removed its files): the caller then reads the whole snapshot."""
        reader = (self.spark.read.format("delta").option("readChangeFeed", "true")
                  .option("startingVersion", after + 1).option("endingVersion", upto))
        feed = reader.table(self.qualified(name)) if self.cfg.metastore else reader.load(self.path(name))
        feed.schema  # noqa: B018 - resolves the feed now, so an uncovered range fails here, not mid-stage
        key = list(TABLES[name].key) if name in TABLES else None
        rows = feed.where(F.col("_change_type").isin(*_CHANGED))
        if key:
            latest = Window.partitionBy(*key).orderBy(F.col("_commit_version").desc())
            rows = rows.withColumn("_latest", F.row_number().over(latest)).where("_latest = 1").drop("_latest")
        return rows.drop(*_CDF_COLUMNS)

    def version(self, name: str) -> int | None:
        if not self.exists(name):
            return None
        return int(self.spark.sql(f"DESCRIBE HISTORY {self.qualified(name)} LIMIT 1").select("version").first()[0])

    def merge(self, name: str, source: DataFrame, update_matched: bool = False,
              delete_unmatched_where: str | None = None, target_where: str | None = None) -> dict[str, int]:
        """MERGE on the table's key: insert new keys, optionally update matched ones and delete target rows
        (matching `delete_unmatched_where`) that the source lacks; all in one atomic commit. Returns metrics.
        `target_where` (on `t.`, with literals) narrows the target rows the source can match, so Delta skips
        the files whose statistics rule them out instead of joining the source against the whole table."""
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in TABLES[name].key)
        if target_where:
            on = f"{on} AND ({target_where})"
        clauses = ["WHEN MATCHED THEN UPDATE SET *"] if update_matched else []
        clauses.append("WHEN NOT MATCHED THEN INSERT *")
        if delete_unmatched_where:
            clauses.append(f"WHEN NOT MATCHED BY SOURCE AND ({delete_unmatched_where}) THEN DELETE")
        return sql_merge(self.spark, self.qualified(name), source, on, clauses)

    def history(self, name: str, limit: int = 1) -> DataFrame:
        """Delta's commit log, newest first (DESCRIBE HISTORY: works over Spark Connect, unlike DeltaTable)."""
        return self.spark.sql(f"DESCRIBE HISTORY {self.qualified(name)} LIMIT {int(limit)}")

    def maintain(self, retention_hours: float, below_safety: bool = False) -> list[tuple[str, str, str]]:
        """OPTIMIZE (compaction, clustering) then VACUUM every lake table; returns (table, step, outcome) rows."""
        if retention_hours < SAFETY_RETENTION_HOURS and not below_safety:
            raise ValueError(f"VACUUM retention {retention_hours} h is below Delta's safety interval of "
                             f"{SAFETY_RETENTION_HOURS} h: readers and the change feed of older versions may still "
                             "need those files; pass --below-safety-interval to do it anyway")
        done = []
        check = "spark.databricks.delta.retentionDurationCheck.enabled"
        previous = self.spark.conf.get(check, "true")
        if below_safety:
            self.spark.conf.set(check, "false")
        try:
            for name in TABLES:
                if not self.exists(name):
                    continue
                metrics = self.spark.sql(f"OPTIMIZE {self.qualified(name)}").first()["metrics"]
                done.append((name, "optimize", f"{metrics['numFilesRemoved']} files -> {metrics['numFilesAdded']}"))
                self.spark.sql(f"VACUUM {self.qualified(name)} RETAIN {retention_hours} HOURS").collect()
                done.append((name, "vacuum", f"retain {retention_hours:g} h"))
        finally:
            self.spark.conf.set(check, previous)
        return done

    def append(self, name: str, rows: DataFrame) -> None:
        """Blind append, for append-only ledgers whose keys are fresh uuids (cheaper than MERGE)."""
        if self.cfg.metastore:
            rows.write.format("delta").mode("append").saveAsTable(self.qualified(name))
        else:
            rows.write.format("delta").mode("append").save(self.path(name))

    def register_views(self) -> list[str]:
        """Tables and views under their plain names for this session's SQL; returns the view names defined.

        In a metastore the views are also created there (CREATE OR REPLACE VIEW), so BI tools see them."""
        from refinery.schemas.views import VIEWS

        for name in TABLES:
            if self.exists(name):
                self.read(name).createOrReplaceTempView(name)
        defined = []
        for view in VIEWS.values():
            if not all(self.exists(t) for t in view.tables):
                continue
            present = [*view.tables, *(t for t in view.optional if self.exists(t))]
            query = view.query({t: self.qualified(t) for t in present})
            if self.cfg.metastore:
                comment = view.description.replace("'", "''")
                self.spark.sql(f"CREATE OR REPLACE VIEW {self.qualified(view.name)} COMMENT '{comment}' AS {query}")
            self.spark.sql(query).createOrReplaceTempView(view.name)
            defined.append(view.name)
        return defined


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def sql_merge(spark: SparkSession, target: str, source: DataFrame, on: str, clauses: list[str]) -> dict[str, int]:
    """SQL MERGE of source (as a temporary view) into target: the command DeltaTable.merge runs, and it works over
    Spark Connect. Returns Delta's merge metrics."""
    view = f"_refinery_merge_{uuid.uuid4().hex}"
    source.createOrReplaceTempView(view)
    try:
        row = spark.sql(f"MERGE INTO {target} t USING {view} s ON {on} " + " ".join(clauses)).first()
    finally:
        spark.catalog.dropTempView(view)
    return {k: int(v) for k, v in row.asDict().items()} if row is not None else {}
