#!/usr/bin/env bash
# Dataproc initialization action: install the refinery wheel (and its dependencies from PyPI) into the cluster's
# Python on every node, so executors import the UDFs. The wheel's URI comes from the cluster metadata
# `refinery-wheel` (the workflow templates set it).
set -euo pipefail
wheel_uri="$(/usr/share/google/get_metadata_value attributes/refinery-wheel)"
tmp="$(mktemp -d)"
gsutil cp "$wheel_uri" "$tmp/"
# extras from the metadata `refinery-extras` (default gcs: gcsfs for benchmark and classifier files by gs:// URI;
# the LLM template adds gpu: vLLM)
extras="$(/usr/share/google/get_metadata_value attributes/refinery-extras || echo gcs)"
python3 -m pip install --quiet "$tmp/$(basename "$wheel_uri")[$extras]"
rm -rf "$tmp"
