"""The Airflow DAG loads in Airflow's own DagBag with no import errors, with the official providers' operators and
the stages in pipeline order. Runs in .venv-airflow (`make test-airflow`): Airflow is not in the pipeline's venv."""

from __future__ import annotations

from pathlib import Path

import pytest

DAG_FILE = Path(__file__).resolve().parents[1] / "deploy" / "airflow" / "refinery_dag.py"
pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory, request):
    import os

    home = tmp_path_factory.mktemp("airflow-home")
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.1+
    except ImportError:
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=str(DAG_FILE))


def test_dagbag_loads_both_dags_without_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"refinery_databricks", "refinery_dataproc"}


@pytest.mark.parametrize("dag_id, operator", [("refinery_databricks", "DatabricksSubmitRunOperator"),
                                               ("refinery_dataproc", "DataprocSubmitJobOperator")])
def test_every_stage_runs_once_after_its_upstream_with_the_providers_operator(dagbag, dag_id, operator):
    dag = dagbag.dags[dag_id]
    stages = ["ingest", "decontaminate", "quality", "dedup", "refine", "label", "rewrite"]
    assert sorted(dag.task_ids) == sorted(stages)
    for task in dag.tasks:
        assert type(task).__name__ == operator
        assert type(task).__module__.startswith("airflow.providers.")
    upstream = {t.task_id: set(t.get_flat_relative_ids(upstream=True)) for t in dag.tasks}
    # every stage waits, directly or not, for every stage the pipeline runs before it that it reads
    assert upstream["ingest"] == set()
    assert upstream["dedup"] >= {"ingest", "quality"}
    for llm in ("refine", "label", "rewrite"):
        assert upstream[llm] >= {"ingest", "decontaminate", "quality", "dedup"}
    assert "refine" in upstream["label"] and "label" in upstream["rewrite"]
    for task in dag.tasks:  # never waits for a later stage
        assert all(stages.index(u) < stages.index(task.task_id) for u in upstream[task.task_id])


def test_stage_commands_render_with_the_dag_params(dagbag):
    dag = dagbag.dags["refinery_databricks"]
    run = dag.get_task("ingest").json
    wheel_task = run["tasks"][0]["python_wheel_task"]
    assert wheel_task["entry_point"] == "refinery" and wheel_task["parameters"][:3] == ["run", "--stage", "ingest"]
    job = dagbag.dags["refinery_dataproc"].get_task("dedup").job
    assert job["pyspark_job"]["main_python_file_uri"].endswith("/jobs/dedup.py")
    assert "job" in type(dagbag.dags["refinery_dataproc"].get_task("dedup")).template_fields
