"""The ledger's secret redaction rule (jobs/redact.py), in both directions."""

from __future__ import annotations

import pytest

from refinery.jobs.config import load_config
from refinery.jobs.redact import REDACTED, is_secret_key, redact, redact_value

SECRET = [
    "fs.s3a.access.key", "fs.s3a.secret.key", "fs.s3a.session.token", "spark.hadoop.fs.s3a.secret.key",
    "fs.s3a.bucket.my-bucket.secret.key", "fs.s3a.server-side-encryption.key",
    "fs.azure.account.key.myacct.dfs.core.windows.net", "fs.azure.sas.container.myacct.blob.core.windows.net",
    "fs.azure.sas.fixed.token.myacct.dfs.core.windows.net", "fs.azure.account.oauth2.client.secret",
    "fs.gs.auth.service.account.json.keyfile", "fs.gs.auth.service.account.private.key",
    "google.cloud.auth.service.account.json.keyfile", "spark.authenticate.secret", "spark.ssl.keyPassword",
    "api_key", "apiKey", "password", "db.credentials", "AWS_SECRET_ACCESS_KEY", "sasToken",
]
HARMLESS = [
    "spark.sql.shuffle.partitions", "spark.master", "fs.s3a.endpoint", "fs.s3a.path.style.access",
    "llm.max_tokens", "max_output_tokens", "refine.chunk.max_prompt_tokens", "tokenizer", "keyed", "monkey",
    "primary", "fs.azure.account.auth.type", "fs.azure.account.oauth2.client.id",
    "fs.s3a.aws.credentials.provider", "fs.azure.sas.token.provider.type", "api_key_env", "fs.gs.auth.type",
    "passage_field",
]


@pytest.mark.parametrize("key", SECRET)
def test_secret_keys_are_recognised(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", HARMLESS)
def test_harmless_keys_are_kept(key):
    assert not is_secret_key(key)


def test_redact_replaces_values_at_any_depth_and_keeps_the_rest():
    config = {"spark": {"master": "local[2]", "conf": {"spark.hadoop.fs.s3a.access.key": "AKIAEXAMPLE",
                                                       "spark.hadoop.fs.s3a.secret.key": "wJalrXUtn",
                                                       "spark.sql.shuffle.partitions": "8"}},
              "llm": {"max_tokens": 512, "openai": {"api_key_env": "OPENAI_API_KEY", "api_key": None}},
              "list": [{"token": "t0k"}, "plain"]}
    assert redact(config) == {
        "spark": {"master": "local[2]", "conf": {"spark.hadoop.fs.s3a.access.key": REDACTED,
                                                 "spark.hadoop.fs.s3a.secret.key": REDACTED,
                                                 "spark.sql.shuffle.partitions": "8"}},
        "llm": {"max_tokens": 512, "openai": {"api_key_env": "OPENAI_API_KEY", "api_key": None}},
        "list": [{"token": REDACTED}, "plain"]}
    assert config["spark"]["conf"]["spark.hadoop.fs.s3a.secret.key"] == "wJalrXUtn"  # a copy: the input is intact


def test_secrets_inside_uris_are_redacted():
    assert redact_value("sc://host:15002/;user_id=me;token=abc123") == f"sc://host:15002/;user_id=me;token={REDACTED}"
    assert redact_value("https://acct.blob.core.windows.net/c?sv=2022&sig=XYZ%3D&se=1") == (
        f"https://acct.blob.core.windows.net/c?sv=2022&sig={REDACTED}&se=1")
    assert redact_value("s3a://AKIA:s3cr3t@bucket/path") == f"s3a://AKIA:{REDACTED}@bucket/path"
    assert redact_value("s3a://bucket/data/*.warc.gz") == "s3a://bucket/data/*.warc.gz"


def test_the_default_configuration_is_left_untouched():
    dump = load_config(environ={}).model_dump(mode="json")
    assert redact(dump) == dump
