"""Where tables live (a path root or a metastore schema) and the few Delta operations stages use."""

from __future__ import annotations

import os

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from refinery.schemas.tables import TABLES, TableSpec

from .config import StorageConfig


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
        return DeltaTable.isDeltaTable(self.spark, self.path(name))

    def create(self, spec: TableSpec) -> None:
        """Declare the table from its schema if it does not exist yet (never implicitly on write)."""
        builder = DeltaTable.createIfNotExists(self.spark).addColumns(spec.schema).comment(spec.description)
        if self.cfg.metastore:
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self.cfg.metastore}")
            builder = builder.tableName(self.qualified(spec.name))
        else:
            builder = builder.location(self.path(spec.name))
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        builder.execute()

    def table(self, name: str) -> DeltaTable:
        if self.cfg.metastore:
            return DeltaTable.forName(self.spark, self.qualified(name))
        return DeltaTable.forPath(self.spark, self.path(name))

    def read(self, name: str) -> DataFrame:
        return self.table(name).toDF()

    def version(self, name: str) -> int | None:
        if not self.exists(name):
            return None
        return int(self.table(name).history(1).select("version").first()[0])

    def merge(self, name: str, source: DataFrame, update_matched: bool = False,
              delete_unmatched_where: str | None = None) -> dict[str, int]:
        """MERGE on the table's key: insert new keys, optionally update matched ones and delete target rows
        (matching `delete_unmatched_where`) that the source lacks; all in one atomic commit. Returns metrics."""
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in TABLES[name].key)
        merge = self.table(name).alias("t").merge(source.alias("s"), on)
        if update_matched:
            merge = merge.whenMatchedUpdateAll()
        merge = merge.whenNotMatchedInsertAll()
        if delete_unmatched_where:
            merge = merge.whenNotMatchedBySourceDelete(condition=delete_unmatched_where)
        metrics = merge.execute()
        row = metrics.first() if metrics is not None else None
        return {k: int(v) for k, v in row.asDict().items()} if row is not None else {}

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
