from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from streamlstm.config import (
    Config,
    ConfigError,
    ModelConfig,
    dump_yaml,
    load_config,
)
from streamlstm.engine import hyperparams

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def write(tmp_path, text, name="app.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load(path=None, env=None, overrides=None):
    return load_config(path, env=env or {}, overrides=overrides or {})


def key_paths(node, prefix=()):
    if isinstance(node, dict) and node:
        return {p for k, v in node.items() for p in key_paths(v, prefix + (k,))}
    return {prefix}


# --------------------------------------------------------------------- defaults & files


def test_model_config_matches_engine_hyperparameters():
    names = {f.name: f.default for f in fields(ModelConfig)}
    expected = {**hyperparams.DEFAULTS, "weight_mode": "per_stream", "backend": "cpu", "threads": 0}
    assert names == expected


def test_default_yaml_equals_defaults_and_lists_every_key():
    path = CONFIG_DIR / "default.yaml"
    assert load(str(path)) == Config() == load()
    written = yaml.safe_load(path.read_text())
    assert key_paths(written) == key_paths(Config().to_dict())
    # What check-config prints is the file's values, spelt as it spells them (header: auto, not null).
    assert Config().to_dict()["input"] == written["input"]


@pytest.mark.parametrize("name", ["default", "kafka", "gpu", "multivariate"])
def test_shipped_configs_load(name):
    load(str(CONFIG_DIR / f"{name}.yaml"))


def test_gpu_yaml():
    cfg = load(str(CONFIG_DIR / "gpu.yaml"))
    assert cfg.model.backend == "auto" and cfg.model.weight_mode == "shared"
    assert cfg.max_streams > Config().max_streams


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    assert load(write(tmp_path, "model:\n  learning_rate: 1e-3\n")).model.learning_rate == 1e-3


def test_empty_file_means_defaults(tmp_path):
    assert load(write(tmp_path, "")) == Config()


def test_dump_yaml_round_trips(tmp_path):
    cfg = load(str(CONFIG_DIR / "multivariate.yaml"), overrides={"kafka.topics": "a,b"})
    assert load(write(tmp_path, dump_yaml(cfg))) == cfg


def test_dump_yaml_redacts_secrets():
    cfg = load(env={"STREAMLSTM_KAFKA__SECURITY__SASL_PLAIN_PASSWORD": "hunter2"})
    assert cfg.kafka.security["sasl_plain_password"] == "hunter2"
    assert "hunter2" not in dump_yaml(cfg)
    assert "hunter2" in dump_yaml(cfg, redact_secrets=False)


# --------------------------------------------------------------------- precedence


def test_precedence_override_env_yaml_default(tmp_path):
    path = write(tmp_path, "model:\n  hidden_size: 8\n  k2: 8\n  warmup: 5\n")
    env = {"STREAMLSTM_MODEL__HIDDEN_SIZE": "16", "STREAMLSTM_MODEL__K2": "4"}
    cfg = load(path, env=env, overrides={"model.hidden_size": 64})
    assert cfg.model.hidden_size == 64      # override beats env and yaml
    assert cfg.model.k2 == 4                # env beats yaml
    assert cfg.model.warmup == 5            # yaml beats default
    assert cfg.model.k1 == 1                # default


def test_env_scheme_and_text_typing():
    env = {
        "STREAMLSTM_KAFKA__BOOTSTRAP_SERVERS": "a:1,b:2",
        "STREAMLSTM_KAFKA__GROUP_ID": "123",          # stays a string
        "STREAMLSTM_KAFKA__CHANGELOG_TOPIC": "null",
        "STREAMLSTM_MAX_STREAMS": "5000",
        "STREAMLSTM_LOG_LEVEL": "debug",
        "STREAMLSTM_OUTPUT__ONLY_ANOMALIES": "true",
        "STREAMLSTM_MODEL__LEARNING_RATE": "1e-2",
        "STREAMLSTM_CONFIG": "/ignored.yaml",          # not a config key: left for the CLI
        "OTHER": "x",
    }
    cfg = load(env=env)
    assert cfg.kafka.bootstrap_servers == ("a:1", "b:2")
    assert cfg.kafka.group_id == "123"
    assert cfg.kafka.changelog_topic is None
    assert cfg.max_streams == 5000
    assert cfg.log_level == "DEBUG"
    assert cfg.output.only_anomalies is True
    assert cfg.model.learning_rate == 0.01


def test_env_yaml_flow_list_and_nested_mapping():
    env = {"STREAMLSTM_KAFKA__TOPICS": "[t1, t2]",
           "STREAMLSTM_KAFKA__SECURITY": "{security_protocol: SSL, ssl_check_hostname: false}"}
    cfg = load(env=env)
    assert cfg.kafka.topics == ("t1", "t2")
    assert dict(cfg.kafka.security) == {"security_protocol": "SSL", "ssl_check_hostname": False}


def test_override_strings_are_typed_and_none_skipped(tmp_path):
    path = write(tmp_path, "batch_size: 7\n")
    cfg = load(path, overrides={"model.hidden_size": "12", "batch_size": None})
    assert cfg.model.hidden_size == 12 and cfg.batch_size == 7


def test_ints_accepted_for_floats():
    cfg = load(overrides={"model.learning_rate": 1, "checkpoint.every_seconds": 5})
    assert cfg.model.learning_rate == 1.0 and isinstance(cfg.model.learning_rate, float)
    assert isinstance(cfg.checkpoint.every_seconds, float)


# --------------------------------------------------------------------- errors


def test_unknown_key_names_file_and_line(tmp_path):
    path = write(tmp_path, "source: stdin\nmodel:\n  hidden_size: 8\n  hiden: 3\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value) == (f"{path}:4: model.hiden: unknown key (did you mean 'hidden_size'?)")


def test_unknown_section(tmp_path):
    path = write(tmp_path, "modle:\n  k1: 1\n")
    with pytest.raises(ConfigError, match=rf"^{path}:1: modle: unknown key"):
        load(path)


def test_wrong_type_names_file_and_line(tmp_path):
    path = write(tmp_path, "model:\n  cell: gru\n  hidden_size: abc\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}:3: model.hidden_size: expected int")
    assert str(err.value).endswith("got 'abc'")


@pytest.mark.parametrize("key, value", [
    ("model.hidden_size", True),         # bool is not an int
    ("model.hidden_size", 2.5),
    ("model.learning_rate", "fast"),
    ("output.only_anomalies", 1),
    ("model.record_window", 1),          # 1 is not a boolean
    ("kafka.bootstrap_servers", []),
    ("kafka.bootstrap_servers", ["127.0.0.1:abc"]),  # (before: accepted; confluent tried port 0)
    ("kafka.bootstrap_servers", ["a:1", "b:"]),
    ("kafka.bootstrap_servers", [":9092"]),
    ("kafka.bootstrap_servers", ["a:65536"]),
    ("checkpoint.state_dir", 5),
])
def test_wrong_types(key, value):
    with pytest.raises(ConfigError, match=rf"^command line: {key}: expected"):
        load(overrides={key: value})


@pytest.mark.parametrize("key, value", [
    ("model.hidden_size", 0),
    ("model.k1", 0),
    ("model.learning_rate", 0),
    ("model.input_dropout", 1.0),
    ("model.input_dropout", -0.1),
    ("model.threshold", 0),
    ("model.threshold", 1),
    ("checkpoint.keep", 0),
    ("checkpoint.every_seconds", 0),
    ("metrics.port", 70000),
    ("model.cell", "rnn"),
    ("source", "file"),
    ("input.format", "xml"),
    ("kafka.key_source", "value"),
    ("kafka.output_mode", "stream"),
    ("log_level", "loud"),
])
def test_out_of_range(key, value):
    with pytest.raises(ConfigError, match=rf"^command line: {key}: expected"):
        load(overrides={key: value})


def test_env_error_names_variable():
    with pytest.raises(ConfigError, match=r"^environment variable STREAMLSTM_MODEL__K1: model.k1: "):
        load(env={"STREAMLSTM_MODEL__K1": "-1"})
    with pytest.raises(ConfigError, match=r"^environment variable STREAMLSTM_METRICS__PORTT: "
                                          r"metrics.portt: unknown key"):
        load(env={"STREAMLSTM_METRICS__PORTT": "1"})


@pytest.mark.parametrize("name, meant", [("STREAMLSTM_MAX_STREAM", "STREAMLSTM_MAX_STREAMS"),
                                         ("STREAMLSTM_MODEL_HIDDEN_SIZE", "STREAMLSTM_MODEL__HIDDEN_SIZE"),
                                         ("STREAMLSTM_LOG_LEVLE", "STREAMLSTM_LOG_LEVEL")])
def test_a_variable_that_nearly_names_a_setting_is_an_error(name, meant):
    """It was ignored: the setting kept its default without a word."""
    with pytest.raises(ConfigError, match=rf"^environment variable {name}: not a setting \(did you mean {meant}\?\)$"):
        load(env={name: "5"})
    # Other programs' variables are left alone.
    assert load(env={"STREAMLSTM_CONFIG": "x.yaml", "STREAMLSTM_TANSU_BIN": "/t", "STREAMLSTM_HOME": "/h"}) == load()


def test_k2_must_not_be_below_k1(tmp_path):
    path = write(tmp_path, "model:\n  k1: 8\n  k2: 4\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: model.k2: k2 must be ≥ k1"):
        load(path)
    with pytest.raises(ConfigError, match=r"^command line: model.k1: "):
        load(overrides={"model.k1": 32})


def test_security_allowlist():
    with pytest.raises(ConfigError, match=r"kafka.security.sasl_oauth_token_provider: expected one of"):
        load(overrides={"kafka.security": {"sasl_oauth_token_provider": "x"}})
    with pytest.raises(ConfigError, match=r"kafka.security.ssl_check_hostname: expected true or false"):
        load(overrides={"kafka.security": {"ssl_check_hostname": "yes please"}})


def test_kafka_client_and_its_options():
    """kafka.client picks the library; kafka.client_options passes its own settings through,
    checked only for shape, and dump_yaml redacts those that name a password or secret."""
    assert load().kafka.client == "confluent"
    with pytest.raises(ConfigError, match=r"kafka.client: expected one of 'confluent', 'kafka-python', got 'java'"):
        load(overrides={"kafka.client": "java"})
    env = {"STREAMLSTM_KAFKA__CLIENT": "kafka-python",
           "STREAMLSTM_KAFKA__CLIENT_OPTIONS": "{consumer: {fetch_max_wait_ms: 10}, producer: {sasl.password: hunter2}}"}
    cfg = load(env=env)
    assert cfg.kafka.client == "kafka-python"
    assert cfg.kafka.client_options["consumer"] == {"fetch_max_wait_ms": 10}
    assert "hunter2" not in dump_yaml(cfg) and "fetch_max_wait_ms: 10" in dump_yaml(cfg)
    with pytest.raises(ConfigError, match=r"kafka.client_options.admin: expected 'consumer' or 'producer'"):
        load(overrides={"kafka.client_options": {"admin": {}}})
    with pytest.raises(ConfigError, match=r"kafka.client_options.consumer: expected mapping of setting names"):
        load(overrides={"kafka.client_options": {"consumer": {"a": [1]}}})


@pytest.mark.parametrize("key, topic", [("kafka.output_topic", "in"), ("kafka.dead_letter_topic", "in"),
                                        ("kafka.changelog_topic", "in"), ("kafka.changelog_topic", "out")])
def test_a_topic_the_daemon_writes_is_not_one_it_reads(key, topic):
    """An output or dead-letter topic that is an input topic was accepted: the daemon scored its
    own results (40 events became 51,883 in 15 s) or nested dead letters without end."""
    overrides = {"source": "kafka", "kafka.topics": "in,more", "kafka.output_topic": "out", key: topic}
    with pytest.raises(ConfigError, match=rf"^command line: {key}: '{topic}' is also "):
        load(overrides=overrides)
    assert load(overrides={**overrides, key: "elsewhere"}).kafka.topics == ("in", "more")


def test_kafka_source_needs_topics():
    with pytest.raises(ConfigError, match=r"kafka.topics: at least one topic"):
        load(overrides={"source": "kafka"})
    assert load(overrides={"source": "kafka", "kafka.topics": "m"}).kafka.topics == ("m",)


def test_duplicate_yaml_key(tmp_path):
    path = write(tmp_path, "model:\n  k1: 1\nmodel:\n  k1: 2\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: duplicate key 'model'"):
        load(path)


def test_invalid_yaml_and_missing_file(tmp_path):
    path = write(tmp_path, "model:\n  k1: [1\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: invalid YAML"):
        load(path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load(write(tmp_path, "- 1\n", "list.yaml"))


# --------------------------------------------------------------------- hostile documents


@pytest.mark.parametrize("nest", ["[", "{a: "])
def test_deep_nesting_is_a_config_error(tmp_path, nest):
    """20,000 levels used to raise RecursionError."""
    close = "]" if nest == "[" else "}"
    path = write(tmp_path, "model:\n  k1: " + nest * 20_000 + "1" + close * 20_000 + "\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: nested deeper than 64 levels"):
        load(path)


@pytest.mark.parametrize("doc", ["model: &m [1, *m]\n", "model: &m\n  k1: *m\n"])
def test_recursive_alias_is_a_config_error(tmp_path, doc):
    """A node containing an alias of itself used to raise RecursionError."""
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError, match=rf"^{path}:\d: alias \*m refers to a node that contains it"):
        load(path)


def test_alias_bomb_is_refused_before_it_expands(tmp_path):
    """Nine levels of nine aliases each: 387 million nodes, which took minutes to walk."""
    lines = ["a: &a [" + ", ".join(["x"] * 9) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=rf"^{path}:6: more than 100000 nodes"):
        load(path)


def test_oversized_file_is_a_config_error(tmp_path):
    path = write(tmp_path, "model:\n  k1: 1\n" + "#" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match=rf"^{path}: larger than 1048576 bytes"):
        load(path)


@pytest.mark.parametrize("key", ["checkpoint.state_dir", "kafka.changelog_topic"])
def test_empty_optional_string_is_an_error_not_null(tmp_path, key):
    """`--state-dir ''` used to mean "no state dir" without a word."""
    env = "STREAMLSTM_" + key.upper().replace(".", "__")
    section, name = key.split(".")
    for source in ({"env": {env: ""}}, {"overrides": {key: ""}},
                   {"path": write(tmp_path, f"{section}:\n  {name}: ''\n")}):
        with pytest.raises(ConfigError, match=rf"{key}: expected non-empty string or null, got ''"):
            load(**source)
    assert getattr(getattr(load(env={env: "null"}), section), name) is None


# --------------------------------------------------------------------- groups


GROUPS = """\
model:
  hidden_size: 24
  threshold: 0.5
groups:
  - name: cpu
    match: ["host-*/cpu", "vm-?/cpu"]
    model:
      cell: gru
      hidden_size: 16
  - name: payments
    match: ["payments/*"]
    model:
      threshold: 0.6
  - name: catch-payments-again
    match: ["payments/eu"]
"""


def test_groups_matching_and_inheritance(tmp_path):
    cfg = load(write(tmp_path, GROUPS), env={"STREAMLSTM_MODEL__WARMUP": "7"})
    name, model = cfg.model_for("host-12/cpu")
    assert name == "cpu" and model.cell == "gru" and model.hidden_size == 16
    assert model.threshold == 0.5 and model.warmup == 7   # inherited, env applied first
    assert cfg.model_for("vm-1/cpu")[0] == "cpu"
    assert cfg.model_for("vm-12/cpu")[0] == "default"
    name, model = cfg.model_for("payments/eu")             # first matching group wins
    assert name == "payments" and model.threshold == 0.6 and model.hidden_size == 24
    assert cfg.model_for("HOST-1/cpu") == ("default", cfg.model)  # case-sensitive
    assert cfg.groups[2].model == cfg.model


def test_group_errors_name_the_group(tmp_path):
    bad = GROUPS.replace("threshold: 0.6", "threshold: 1.5")
    path = write(tmp_path, bad)
    with pytest.raises(ConfigError, match=rf"^{path}:13: groups\[1\].model.threshold: expected"):
        load(path)
    path = write(tmp_path, "groups:\n  - name: default\n    match: [x]\n", "g.yaml")
    with pytest.raises(ConfigError, match=r"groups\[0\].name: group name 'default' is reserved"):
        load(path)
    path = write(tmp_path, "groups:\n  - name: a\n    model: {}\n", "g2.yaml")
    with pytest.raises(ConfigError, match=rf"^{path}:2: groups\[0\]: missing required key 'match'"):
        load(path)


def test_group_k_checked_against_inherited_k2(tmp_path):
    path = write(tmp_path, "groups:\n  - name: a\n    match: ['*']\n    model:\n      k1: 20\n")
    with pytest.raises(ConfigError, match=rf"^{path}:5: groups\[0\].model.k1: k2 must be ≥ k1"):
        load(path)


@pytest.mark.parametrize("given, expected", [
    (";", ";"), ("|", "|"), ("#", "#"), ("tab", "\t"), ("TAB", "\t"), ("\\t", "\t"), ("\t", "\t"), ("null", None),
    (" ", " "), ("space", " "), ("Whitespace", " "),
])
def test_input_delimiter_from_text(given, expected):
    assert load(overrides={"input.delimiter": given}).input.delimiter == expected
    assert load(env={"STREAMLSTM_INPUT__DELIMITER": given}).input.delimiter == expected


def test_input_delimiter_in_yaml_and_its_checks(tmp_path):
    assert load(write(tmp_path, 'input:\n  delimiter: "\\t"\n')).input.delimiter == "\t"
    assert load(write(tmp_path, "input:\n  delimiter: ';'\n")).input.delimiter == ";"
    for bad in ("", ";;", '"', "\n", 1):
        with pytest.raises(ConfigError, match=r"^command line: input.delimiter: expected one character"):
            load(overrides={"input.delimiter": bad})


def test_input_column_lists():
    cfg = load(overrides={"input.columns": "a, b", "input.exclude_columns": "anomaly,changepoint"}).input
    assert cfg.columns == ("a", "b") and cfg.exclude_columns == ("anomaly", "changepoint")
    assert load(overrides={"input.columns": "[Volume Flow RateRMS, 'x,y']"}).input.columns == ("Volume Flow RateRMS",
                                                                                                "x,y")
    with pytest.raises(ConfigError, match=r"^command line: input.exclude_columns: expected list"):
        load(overrides={"input.exclude_columns": [""]})


@pytest.mark.parametrize("overrides, blamed", [
    ({"input.stream_field": "value"}, "input.stream_field: 'value' is input.value_field too"),
    ({"input.ts_field": "value"}, "input.ts_field: 'value' is input.value_field too"),
    ({"input.value_field": "v", "input.values_field": "v"}, "input.values_field: 'v' is input.value_field too"),
])
def test_one_field_name_in_two_input_roles_is_an_error(overrides, blamed):
    with pytest.raises(ConfigError, match=blamed):
        load_config(None, overrides=overrides)


def test_bootstrap_servers_may_omit_the_port_and_bracket_ipv6():
    servers = ["broker", "kafka-1.example:9093", "[::1]:9092"]
    assert load(overrides={"kafka.bootstrap_servers": servers}).kafka.bootstrap_servers == tuple(servers)
    with pytest.raises(ConfigError, match=r"^command line: kafka.bootstrap_servers: expected non-empty list of "
                                          r"host:port addresses \(port a number from 1 to 65535\), got "):
        load(overrides={"kafka.bootstrap_servers": "127.0.0.1:abc"})
