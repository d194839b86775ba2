"""Airflow DAGs that run the Refinery stages in pipeline order: `refinery_databricks` (one Databricks run per stage,
`refinery run --stage NAME` from the wheel) and `refinery_dataproc` (one Dataproc PySpark job per stage,
`jobs/NAME.py`). Copy this file into the DAGs folder; connections `databricks_default` / `google_cloud_default`.

Where things live comes from the DAG params (set them when triggering, or edit the defaults here). STAGES, UPSTREAM
and the --set lists are plain literals: tests/test_deploy.py reads them and checks them against the code (stage
names and order, config keys), and tests/test_deploy_airflow.py loads this file with Airflow's DagBag.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.providers.google.cloud.operators.dataproc import DataprocSubmitJobOperator

try:
    from airflow.sdk import DAG  # Airflow 3
except ImportError:  # Airflow 2
    from airflow import DAG

# Pipeline order (refinery.jobs.main.STAGE_ORDER, then LLM_STAGES) and what each stage waits for: decontaminate and
# quality only need documents; dedup keeps the best-quality copy, so it follows quality; the LLM stages read the
# curated documents (their `require` lists: quality, dedup, decontaminate) and run one after another on the GPUs.
STAGES = ["ingest", "decontaminate", "quality", "dedup", "refine", "label", "rewrite"]
LLM_STAGES = ["refine", "label", "rewrite"]
UPSTREAM = {
    "decontaminate": ["ingest"],
    "quality": ["ingest"],
    "dedup": ["quality"],
    "refine": ["decontaminate", "dedup"],
    "label": ["refine"],
    "rewrite": ["label"],
}
# --set overrides every stage gets, and the LLM stages' own (values are Jinja over the DAG params)
COMMON_SETS = ["storage.root={{ params.storage_root }}"]
DATABRICKS_SETS = ["storage.metastore={{ params.databricks_metastore }}"]
LLM_SETS = ["llm.engine=vllm", "llm.model={{ params.llm_model }}", "llm.dtype=bfloat16"]

DATABRICKS_PARAMS = {
    "storage_root": "/Volumes/main/refinery/files",
    "databricks_metastore": "main.refinery",
    "warc_input": "/Volumes/main/refinery/crawl/*.warc.gz",
    "llm_model": "/Volumes/main/refinery/models/Qwen2.5-1.5B-Instruct",
    "wheel": "/Volumes/main/refinery/dist/refinery-0.1.0-py3-none-any.whl",
}
DATAPROC_PARAMS = {
    "storage_root": "gs://BUCKET/lake",
    "warc_input": "gs://BUCKET/crawl/*.warc.gz",
    "llm_model": "gs://BUCKET/models/Qwen2.5-1.5B-Instruct",
    "code_uri": "gs://BUCKET/refinery",
    "gcp_project": "my-project",
    "gcp_region": "europe-west1",
    "cluster": "refinery",
    "gpu_cluster": "refinery-llm",
}
DELTA_JARS = ["delta-spark_4.2_2.13-4.4.0.jar", "delta-storage-4.4.0.jar"]  # deploy/pom.xml's versions
START = datetime(2026, 1, 1)


def stage_args(stage: str, databricks: bool) -> list[str]:
    """The stage's command-line arguments after `refinery run --stage NAME` or `jobs/NAME.py`."""
    args = ["--input", "{{ params.warc_input }}"] if stage == "ingest" else []
    sets = COMMON_SETS + (DATABRICKS_SETS if databricks else []) + (LLM_SETS if stage in LLM_STAGES else [])
    for item in sets:
        args += ["--set", item]
    return args


def _databricks_run(stage: str) -> dict:
    gpu = stage in LLM_STAGES
    cluster = {
        "spark_version": "17.3.x-gpu-ml-scala2.13" if gpu else "17.3.x-scala2.13",
        "node_type_id": "g5.xlarge" if gpu else "i3.xlarge",
        "num_workers": 2 if gpu else 4,
        "data_security_mode": "SINGLE_USER",
        "spark_conf": {"spark.python.worker.reuse": "true",
                       **({"spark.task.resource.gpu.amount": "1"} if gpu else {})},
    }
    libraries = [{"whl": "{{ params.wheel }}"}] + ([{"pypi": {"package": "vllm>=0.6"}}] if gpu else [])
    return {"run_name": f"refinery {stage}", "tasks": [{
        "task_key": stage, "new_cluster": cluster, "libraries": libraries,
        "python_wheel_task": {"package_name": "refinery", "entry_point": "refinery",
                              "parameters": ["run", "--stage", stage, *stage_args(stage, databricks=True)]},
    }]}


def _dataproc_job(stage: str) -> dict:
    cluster = "{{ params.gpu_cluster }}" if stage in LLM_STAGES else "{{ params.cluster }}"
    return {
        "placement": {"cluster_name": cluster},
        "pyspark_job": {
            "main_python_file_uri": "{{ params.code_uri }}/jobs/" + stage + ".py",
            "jar_file_uris": ["{{ params.code_uri }}/jars/" + jar for jar in DELTA_JARS],
            "args": stage_args(stage, databricks=False),
        },
    }


def _chain(tasks: dict) -> None:
    for stage, upstream in UPSTREAM.items():
        for name in upstream:
            tasks[name] >> tasks[stage]


with DAG("refinery_databricks", schedule="0 3 * * *", start_date=START, catchup=False, max_active_runs=1,
         params=DATABRICKS_PARAMS, tags=["refinery"]) as databricks_dag:
    _chain({stage: DatabricksSubmitRunOperator(task_id=stage, json=_databricks_run(stage),
                                               databricks_conn_id="databricks_default") for stage in STAGES})

with DAG("refinery_dataproc", schedule="0 3 * * *", start_date=START, catchup=False, max_active_runs=1,
         params=DATAPROC_PARAMS, tags=["refinery"]) as dataproc_dag:
    _chain({stage: DataprocSubmitJobOperator(task_id=stage, job=_dataproc_job(stage),
                                             project_id="{{ params.gcp_project }}",
                                             region="{{ params.gcp_region }}") for stage in STAGES})
