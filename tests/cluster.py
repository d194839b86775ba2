"""Real multi-process Spark for the tests and bench/cluster_modes.py: a standalone master with two workers, and a
Spark Connect server with Delta, all started from the installed pyspark and torn down with their children.

Every process gets its own session (process group), so teardown reaches the executors and Python workers the
daemons start, and nothing outlives the `with` block, pass or fail.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pyspark

REPO = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).parent
DELTA_CONF = {"spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
              "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP="127.0.0.1", SPARK_DAEMON_MEMORY="256m",
               # executors' and the Connect server's Python workers: this venv, where refinery is installed
               PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.update(extra)
    return env


def jars_dir() -> Path:
    return REPO / "deploy" / "jars"


class Processes:
    """Started daemons, each in its own session; stop() ends the whole group of each, TERM then KILL."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.procs = logs, []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append((name, proc, log))
        return proc

    def check_alive(self) -> None:
        for name, proc, _ in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        for _, proc, _ in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc, _ in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # the leader may be gone while executors or Python workers of its group linger
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        for _, _, log in self.procs:
            log.close()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(what: str, ready, procs: Processes, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.check_alive()
        if ready():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def _json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def standalone_cluster(workdir: Path, workers: int = 2, cores: int = 1, memory: str = "1g"):
    """A standalone master and `workers` workers, each with its own work directory; yields the master URL."""
    procs = Processes(workdir / "logs")
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port, ui = free_port(), free_port()
    env = spark_env()
    try:
        procs.start("master", [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(ui)], env, workdir)
        url = f"spark://127.0.0.1:{port}"
        for i in range(workers):
            work = workdir / f"worker-{i}"
            work.mkdir(parents=True, exist_ok=True)
            procs.start(f"worker-{i}", [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                        "--cores", str(cores), "--memory", memory, "--work-dir", str(work),
                                        "--webui-port", str(free_port()), url], env, workdir)
        _wait("standalone workers", lambda: ((_json(f"http://127.0.0.1:{ui}/json/") or {}).get("aliveworkers")
                                             == workers), procs)
        yield url
    finally:
        procs.stop()


@contextmanager
def connect_server(workdir: Path, master: str = "local[2]", conf: dict[str, str] | None = None):
    """A Spark Connect server with Delta's jars, extension and catalog; yields its `sc://` URL."""
    procs = Processes(workdir / "logs")
    port = free_port()
    settings = {**DELTA_CONF, "spark.connect.grpc.binding.port": str(port),
                "spark.connect.grpc.binding.address": "127.0.0.1", "spark.ui.enabled": "false",
                "spark.sql.session.timeZone": "UTC", **(conf or {})}
    jars = ",".join(str(j) for j in sorted(jars_dir().glob("*.jar")))
    argv = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", master, "--driver-memory", "1g", "--jars", jars,
            "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            *[arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")], "spark-internal"]
    try:
        env = spark_env()
        env.pop("SPARK_DAEMON_MEMORY")  # the launcher counts the server as a daemon: it would cap its heap
        procs.start("connect-server", argv, env, workdir)
        _wait("Spark Connect server", lambda: _listening(port), procs)
        yield f"sc://127.0.0.1:{port}"
    finally:
        procs.stop()


def run_refinery(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`refinery ARGS` from the venv, in its own session (killed with its group on timeout)."""
    refinery = Path(sys.executable).parent / "refinery"
    proc = subprocess.Popen([str(refinery), *args], cwd=cwd, env=spark_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        out, err = proc.communicate()
        raise TimeoutError(f"refinery {' '.join(args)} ran past {timeout}s:\n{err[-4000:]}") from None
    finally:
        _signal_group(proc, signal.SIGKILL)  # the driver's JVM and Python workers, if any linger
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def pipeline_args(lake: Path, model: Path, benchmarks: Path, warcs: list[Path], *extra: str) -> list[str]:
    """The sample pipeline of the cluster tests and bench: ingest → decontaminate → quality → dedup → rewrite
    on small real WARCs, a benchmark subset and the tiny model, in whichever mode `extra` selects."""
    sets = [f"storage.root={lake}", f"spark.jars_dir={jars_dir()}", "spark.shuffle_partitions=2",
            "spark.driver_memory=1g", "ingest.extractor=resiliparse", f"decontaminate.benchmarks_file={benchmarks}",
            f"llm.model={model}", "llm.model_name=tiny-llama", "llm.max_model_len=1024", "llm.batch_size=4",
            "llm.sampling.temperature=0", "rewrite.mix={wrap_medium: 1.0}", "rewrite.max_chunks_per_doc=1",
            "rewrite.max_output_tokens=8", "rewrite.max_seeds=6", "rewrite.partitions=2", *extra]
    return ["run", "--stage", "ingest,decontaminate,quality,dedup,rewrite", "--input",
            ",".join(str(w) for w in warcs), *[a for s in sets for a in ("--set", s)]]


def benchmarks_file(folder: Path, names=("copa", "humaneval", "gsm8k")) -> Path:
    import yaml

    shipped = yaml.safe_load((REPO / "conf" / "benchmarks.yaml").read_text())["benchmarks"]
    entries = [dict(e, path=str(REPO / e["path"])) for e in shipped if e["name"] in names]
    path = folder / "benchmarks.yaml"
    path.write_text(yaml.safe_dump({"benchmarks": entries}))
    return path


SAMPLE_WARCS = [REPO / "data" / "sample" / "cc-main-2024-22_whirlwind.warc.gz",
                REPO / "data" / "sample" / "wget-2024_dolma_sample-0000.warc.gz"]


def snapshot(spark, lake: Path) -> dict[str, object]:
    """What the sample pipeline wrote, as comparable values: keys and decisions of every table it writes,
    and each stage's ledger status (synthetic text is sampled, so only its keys count)."""
    def read(name: str):
        return spark.read.format("delta").load(str(lake / name))

    return {
        "documents": sorted(r.doc_id for r in read("documents").select("doc_id").collect()),
        "contamination": sorted((r.doc_id, r.contaminated) for r in read("contamination").collect()),
        "quality": sorted((r.doc_id, r.keep) for r in read("quality").collect()),
        "duplicates": sorted((r.doc_id, r.is_kept) for r in read("duplicates").collect()),
        "synthetic": sorted(r.synth_id for r in read("synthetic").select("synth_id").collect()),
        "runs": sorted((r.stage, r.status) for r in read("runs").collect()),
    }


def job_properties(event_logs: Path) -> list[dict[str, str]]:
    """The properties (description, tags) of every job in the Spark event logs under a folder."""
    found = []
    for path in sorted(event_logs.rglob("*")):
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                if '"SparkListenerJobStart"' in line:
                    found.append(json.loads(line).get("Properties", {}))
    return found


def event_log_conf(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {"spark.eventLog.enabled": "true", "spark.eventLog.dir": folder.as_uri(),
            "spark.eventLog.compress": "false"}  # Spark 4 compresses with zstd by default
