import pytest

from refinery.jobs.config import ConfigError, load_config


def test_defaults_come_from_the_shipped_pipeline_yaml():
    cfg = load_config(environ={})
    assert cfg.storage.root == "./lakehouse"
    assert cfg.ingest.extractor == "trafilatura"
    assert cfg.validation.enabled is True


def test_set_overrides_are_typed():
    cfg = load_config(overrides=["storage.root=/tmp/x", "ingest.timeout_s=2.5", "validation.enabled=false"],
                      environ={})
    assert cfg.storage.root == "/tmp/x"
    assert cfg.ingest.timeout_s == 2.5
    assert cfg.validation.enabled is False


def test_layers_apply_in_order_file_env_file_env_vars_set(tmp_path):
    config_file = tmp_path / "prod.yaml"
    config_file.write_text("ingest:\n  extractor: resiliparse\n  timeout_s: 3\nstorage:\n  root: /from/file\n")
    env_file = tmp_path / "prod.env"
    env_file.write_text("# comment\nREFINERY_STORAGE__ROOT=/from/env-file\nREFINERY_INGEST__TIMEOUT_S=4\n")
    environ = {"REFINERY_INGEST__TIMEOUT_S": "5"}
    cfg = load_config(config_file, env_file, ["ingest.max_html_bytes=10"], environ=environ)
    assert cfg.ingest.extractor == "resiliparse"
    assert cfg.storage.root == "/from/env-file"
    assert cfg.ingest.timeout_s == 5
    assert cfg.ingest.max_html_bytes == 10


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigError, match=r"ingest\.extracter: unknown key"):
        load_config(overrides=["ingest.extracter=resiliparse"], environ={})


def test_bad_value_names_the_key_and_the_reason():
    with pytest.raises(ConfigError, match=r"config key ingest\.extractor: .*'trafilatura' or 'resiliparse'.*'goose'"):
        load_config(overrides=["ingest.extractor=goose"], environ={})
    with pytest.raises(ConfigError, match=r"ingest\.timeout_s: .*greater than 0"):
        load_config(overrides=["ingest.timeout_s=0"], environ={})


def test_malformed_set_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(overrides=["storage.root"], environ={})
    with pytest.raises(ConfigError, match="nope.yaml: not found"):
        load_config(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError, match="metastore"):
        load_config(overrides=["storage.metastore=a.b.c"], environ={})
