"""The deploy definitions against the code: every task names an entry point that exists (the wheel's console
script and its `refinery` command, or a `jobs/<stage>.py` spark-submit entry), its arguments parse with the real
parsers, every --set key exists in the config model with a value it accepts, and stages run in pipeline order,
each after the stages whose tables it reads. No Spark, no cloud: the files are parsed and checked."""

from __future__ import annotations

import ast
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from refinery.jobs.config import DedupConfig, LabelConfig, RefineConfig, RewriteConfig, load_config
from refinery.jobs.main import stage_names, stage_parser

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# pipeline order from the stage registry (jobs/registry.py): the cheap stages, then the LLM stages
STAGE_ORDER, LLM_STAGES = stage_names(llm=False), stage_names(llm=True)
ALL_STAGES = STAGE_ORDER + LLM_STAGES


def _reads() -> dict[str, set[str]]:
    """Stages whose tables a stage reads, from the config model: dedup keeps by the quality table's score; the LLM
    stages read only documents that pass their `require` filters."""
    reads = {"ingest": set(), "decontaminate": {"ingest"}, "quality": {"ingest"}, "dedup": {"ingest"}}
    if DedupConfig().quality_table == "quality":
        reads["dedup"].add("quality")
    for stage, cfg in (("refine", RefineConfig()), ("label", LabelConfig()), ("rewrite", RewriteConfig())):
        reads[stage] = {"ingest", *cfg.require}
    return reads


def _check_order(upstream: dict[str, list[str]], stages: tuple[str, ...], runs_before: set[str] = frozenset()):
    """Each of `stages` once; each waits (transitively) for every stage it reads that is in this plan, and never
    for a later stage. `runs_before`: stages an earlier plan already ran (Dataproc's CPU template)."""
    assert sorted(upstream) == sorted(stages)

    def closure(stage: str) -> set[str]:
        found = set()
        for dep in upstream[stage]:
            found |= {dep, *closure(dep)}
        return found

    for stage in stages:
        waits = closure(stage)
        assert all(ALL_STAGES.index(dep) < ALL_STAGES.index(stage) for dep in waits), (stage, waits)
        missing = _reads()[stage] - waits - set(runs_before)
        assert not missing, f"{stage} does not wait for {missing}"


def _sets(args: list[str]) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == "--set"]


def _check_sets(sets: list[str]) -> None:
    assert not [s for s in sets if "${" in s or "{{" in s], sets  # every placeholder was substituted
    load_config(overrides=sets, environ={})  # raises ConfigError naming any unknown key or bad value


def _cli_parses(parameters: list[str]) -> str:
    """Parse `refinery <parameters>` with the real typer/click command, without running it; returns --stage."""
    import typer.main

    from refinery.cli import app

    group = typer.main.get_command(app)
    command = group.get_command(None, parameters[0])
    assert command is not None, f"refinery has no command {parameters[0]!r}"
    ctx = command.make_context(parameters[0], list(parameters[1:]))
    return ctx.params.get("stage")


# --- Databricks Asset Bundle -------------------------------------------------------------------------------------

BUNDLE = DEPLOY / "databricks"


def _bundle() -> dict:
    root = yaml.safe_load((BUNDLE / "databricks.yml").read_text())
    for pattern in root.get("include", []):
        for path in sorted(BUNDLE.glob(pattern)):
            root.setdefault("resources", {}).setdefault("jobs", {}).update(
                yaml.safe_load(path.read_text())["resources"]["jobs"])
    return root


def _substitute(value, variables: dict[str, str]):
    if isinstance(value, str):
        return re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]), value)
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    return value


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_databricks_job_runs_every_stage_through_the_wheel_entry_point(target):
    bundle = _bundle()
    variables = {name: spec.get("default") for name, spec in bundle["variables"].items()}
    variables.update(bundle["targets"][target].get("variables", {}))
    assert bundle["targets"]["prod"]["mode"] == "production" and bundle["targets"]["dev"]["mode"] == "development"
    (job,) = _substitute(bundle["resources"]["jobs"], variables).values()
    assert job["schedule"]["quartz_cron_expression"]
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
    upstream = {}
    for task in job["tasks"]:
        wheel = task["python_wheel_task"]
        assert wheel["package_name"] == PYPROJECT["project"]["name"]
        assert wheel["entry_point"] in PYPROJECT["project"]["scripts"]
        stage = _cli_parses(wheel["parameters"])
        assert stage == task["task_key"] and stage in ALL_STAGES
        sets = _sets(wheel["parameters"])
        _check_sets(sets)
        config = load_config(overrides=sets, environ={})
        # Unity Catalog catalog.schema of this target
        assert config.storage.metastore == f"{variables['catalog']}.{variables['schema']}"
        upstream[stage] = [d["task_key"] for d in task.get("depends_on", [])]
        cluster = clusters[task["job_cluster_key"]]
        libraries = task["libraries"]
        wheels = [lib["whl"] for lib in libraries if "whl" in lib]
        assert wheels and all((BUNDLE / "resources" / w).parent.resolve() == REPO / "dist" for w in wheels)
        pypi = {lib["pypi"]["package"] for lib in libraries if "pypi" in lib}
        if stage in LLM_STAGES:
            assert "gpu" in cluster["spark_version"] and config.llm.model
            assert pypi == set(PYPROJECT["project"]["optional-dependencies"]["gpu"])  # the `gpu` extra
        else:
            assert "gpu" not in cluster["spark_version"] and not pypi
    _check_order(upstream, ALL_STAGES)
    artifact = bundle["artifacts"]["refinery_wheel"]
    assert ((BUNDLE / artifact["path"]).resolve() / "pyproject.toml").is_file()


# --- Dataproc ------------------------------------------------------------------------------------------------------

DATAPROC = DEPLOY / "dataproc"


def _delta_jars() -> set[str]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    props = {p.tag.split("}")[1]: p.text for p in ET.parse(DEPLOY / "pom.xml").getroot().find("m:properties", ns)}
    return {f"delta-spark_{props['spark.binary']}_{props['scala.binary']}-{props['delta.version']}.jar",
            f"delta-storage-{props['delta.version']}.jar"}


@pytest.mark.parametrize("template, stages, before", [("workflow-template.yaml", STAGE_ORDER, set()),
                                                      ("workflow-template-llm.yaml", LLM_STAGES, set(STAGE_ORDER))])
def test_dataproc_templates_run_the_spark_submit_entries_in_order(template, stages, before):
    spec = yaml.safe_load((DATAPROC / template).read_text().replace("BUCKET", "my-bucket"))
    cluster = spec["placement"]["managedCluster"]["config"]
    script = cluster["initializationActions"][0]["executableFile"]
    assert (DATAPROC / script.rsplit("/", 1)[1]).is_file()
    extras = cluster["gceClusterConfig"]["metadata"].get("refinery-extras", "gcs").split(",")
    assert set(extras) <= set(PYPROJECT["project"]["optional-dependencies"])
    upstream = {}
    for job in spec["jobs"]:
        stage, pyspark = job["stepId"], job["pysparkJob"]
        entry = REPO / "jobs" / pyspark["mainPythonFileUri"].rsplit("/", 1)[1]
        assert entry.name == f"{stage}.py" and f'stage_main("{stage}")' in entry.read_text()
        assert {uri.rsplit("/", 1)[1] for uri in pyspark["jarFileUris"]} == _delta_jars()
        args = stage_parser(stage).parse_args(pyspark["args"])
        _check_sets(args.overrides)
        upstream[stage] = job.get("prerequisiteStepIds", [])
    _check_order(upstream, stages, before)


# --- Airflow -------------------------------------------------------------------------------------------------------

def _dag_literals() -> dict:
    tree = ast.parse((DEPLOY / "airflow" / "refinery_dag.py").read_text())
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.List | ast.Dict | ast.Constant)}


def _render(item: str, params: dict) -> str:
    return re.sub(r"\{\{\s*params\.(\w+)\s*\}\}", lambda m: params[m.group(1)], item)


def test_airflow_dag_stages_order_and_overrides_match_the_code():
    dag = _dag_literals()
    assert dag["STAGES"] == list(ALL_STAGES) and dag["LLM_STAGES"] == list(LLM_STAGES)
    _check_order({s: dag["UPSTREAM"].get(s, []) for s in ALL_STAGES}, ALL_STAGES)
    assert set(dag["DELTA_JARS"]) == _delta_jars()
    for params, extra in ((dag["DATABRICKS_PARAMS"], dag["DATABRICKS_SETS"]), (dag["DATAPROC_PARAMS"], [])):
        for sets in (dag["COMMON_SETS"] + extra, dag["COMMON_SETS"] + extra + dag["LLM_SETS"]):
            _check_sets([_render(s, params) for s in sets])
    for stage in ALL_STAGES:  # the Dataproc tasks run jobs/<stage>.py
        assert f'stage_main("{stage}")' in (REPO / "jobs" / f"{stage}.py").read_text()


def test_a_wrong_key_or_stage_is_caught():
    from refinery.jobs.config import ConfigError

    with pytest.raises(ConfigError, match="storage.rooot"):
        _check_sets(["storage.rooot=/x"])
    with pytest.raises(AssertionError):
        _check_order({"ingest": [], "quality": ["ingest"], "dedup": ["ingest"], "decontaminate": ["ingest"]},
                     STAGE_ORDER)  # dedup must wait for quality
    with pytest.raises(SystemExit):
        stage_parser("ingest").parse_args(["--sett", "x=1"])
    with pytest.raises(Exception, match="No such option"):  # click's UsageError (typer vendors click)
        _cli_parses(["run", "--stagee", "ingest"])
