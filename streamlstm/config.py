"""The service configuration: one frozen, validated `Config` built from layered sources.

Precedence, highest first:

1. ``overrides`` — a mapping of dotted keys to values, normally from command-line flags
   (``{"kafka.group_id": "g2", "model.hidden_size": 64}``). ``None`` values mean "flag not
   given" and are skipped.
2. Environment variables ``STREAMLSTM_<SECTION>__<KEY>`` — the dotted key upper-cased with
   ``.`` written as ``__``: ``STREAMLSTM_MODEL__HIDDEN_SIZE=64``,
   ``STREAMLSTM_KAFKA__SECURITY__SSL_CAFILE=/ca.pem``. Top-level keys have no section:
   ``STREAMLSTM_MAX_STREAMS=5000``, ``STREAMLSTM_LOG_LEVEL=debug``. Other ``STREAMLSTM_*``
   variables without ``__`` are left alone (the CLI may use names like ``STREAMLSTM_CONFIG``)
   unless they nearly name a setting (``STREAMLSTM_MAX_STREAM``, ``STREAMLSTM_MODEL_K2``);
   those, and a ``__`` variable naming an unknown key, are errors.
3. The YAML file.
4. The dataclass defaults below (``config/default.yaml`` spells them all out).

Values given as text (every environment variable, and string overrides) are read according
to the setting's type: strings are taken verbatim (so ``group_id=123`` stays a string), lists
of strings are comma-separated (``a:1,b:2``) or a YAML flow list (``[a:1, b:2]``), and
everything else is parsed with ``yaml.safe_load`` (``64``, ``true``, ``null``,
``{ssl_cafile: /ca.pem}``).

Group model settings are partial: every setting a group leaves out is taken from the
top-level ``model:`` section after all layers are applied.

Every error is a `ConfigError` whose message starts with where the bad value came from
(``config/app.yaml:12``, ``environment variable STREAMLSTM_MODEL__K2``, ``command line``)
followed by the dotted key.

A config file may have at most `MAX_BYTES` bytes, and YAML (files and text values alike) at
most `MAX_DEPTH` levels of nesting and `MAX_NODES` nodes with aliases expanded, and no alias
of a node inside that node: a real configuration is a few hundred nodes, while deep nesting
exhausts Python's recursion and an alias bomb takes minutes to walk.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any

import yaml

from .engine import hyperparams
from .engine.hyperparams import Number, SettingError
from .engine.scoring import VALUE_LIMIT

__all__ = [
    "CheckpointConfig",
    "Config",
    "ConfigError",
    "GUARANTEES",
    "GroupConfig",
    "InputConfig",
    "KafkaConfig",
    "MetricsConfig",
    "ModelConfig",
    "OutputConfig",
    "dump_yaml",
    "load_config",
]

ENV_PREFIX = "STREAMLSTM_"
GUARANTEES = ("at_least_once", "exactly_once")  # kafka.processing_guarantee (kafka/daemon.py)
DEFAULT_GROUP = "default"
MAX_BYTES = 1 << 20  # of a config file
MAX_DEPTH = 64  # levels of nesting
MAX_NODES = 100_000  # scalars, lists and mappings, counting an aliased node at each use

# Settings that may appear under `kafka.security`, in kafka-python's names (the confluent
# client translates them). sasl_oauth_token_provider is left out on purpose: it takes a
# Python object, which no config file can express.
SECURITY_KEYS = frozenset({
    "security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
    "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_check_hostname",
    "sasl_kerberos_service_name",
})
SECRET_KEYS = frozenset({"sasl_plain_password", "ssl_password"})
SECRET_WORDS = ("password", "secret")  # a kafka.client_options setting naming one of these is a secret


class ConfigError(ValueError):
    """A configuration value that is unknown, mistyped or out of range; the message says where."""


# Detector hyperparameters; the names match `LSTMDetector` / `MultiStreamDetector` kwargs.
# The fields, their defaults and their checks derive from the engine's table of settings
# (engine/hyperparams.py), so a new setting is declared there only.
_MODEL_SETTINGS = {**hyperparams.MODEL, "weight_mode": hyperparams.WEIGHT_MODE, "backend": hyperparams.BACKEND,
                   "threads": hyperparams.THREADS}
ModelConfig = make_dataclass(
    "ModelConfig", [(name, type(s.default), field(default=s.default)) for name, s in _MODEL_SETTINGS.items()],
    frozen=True, slots=True)
ModelConfig.__module__ = __name__
ModelConfig.__doc__ = "The `model:` section: one field per setting of engine/hyperparams.py's table."


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Streams whose id matches any of `match` (fnmatch globs, case-sensitive) use `model`."""

    name: str
    match: tuple[str, ...]
    model: ModelConfig


@dataclass(frozen=True, slots=True)
class InputConfig:
    format: str = "jsonl"
    stream_field: str = "stream"
    value_field: str = "value"
    values_field: str = "values"
    # In a CSV, the default "ts" also finds a column named timestamp, time, datetime or date
    # (io/parsers.py: CsvParser); any other name must be in the header. `--time-column`.
    ts_field: str = "ts"
    # CSV only: the field delimiter (one character, a space meaning runs of whitespace; None =
    # sniffed from the header line);
    # whether the first line names the columns (True), is data (False; columns col_0,
    # col_1, ...), or is judged from its cells (None: data when each is a number or a time);
    # the feature columns (empty = every column but the time and stream columns) and the
    # columns not read at all (labels, ids).
    delimiter: str | None = None
    header: bool | None = None
    columns: tuple[str, ...] = ()
    exclude_columns: tuple[str, ...] = ()
    max_line_bytes: int = 1_000_000
    default_stream: str = "default"
    # Values beyond +-this are rejected (out_of_range); the engine limits what it is given
    # to +-VALUE_LIMIT, within which no statistic can overflow.
    max_abs_value: float = VALUE_LIMIT


@dataclass(frozen=True, slots=True)
class OutputConfig:
    only_anomalies: bool = False


@dataclass(frozen=True, slots=True)
class CheckpointConfig:
    state_dir: str | None = None
    every_events: int = 100_000
    every_seconds: float = 60.0
    keep: int = 3


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    client: str = "confluent"  # the client library (kafka/client.py)
    bootstrap_servers: tuple[str, ...] = ("127.0.0.1:9092",)
    topics: tuple[str, ...] = ()
    group_id: str = "streamlstm"
    output_topic: str = "streamlstm-scores"
    dead_letter_topic: str = "streamlstm-errors"
    changelog_topic: str | None = None
    key_source: str = "key"
    output_mode: str = "batch"
    poll_max_records: int = 5000
    poll_timeout_ms: int = 200
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # exactly_once: each checkpoint interval is one transaction (kafka/daemon.py), whose
    # transactional id is this member's (default "streamlstm-<group_id>-<host name>").
    processing_guarantee: str = "at_least_once"
    transactional_id: str | None = None
    # Read-only view, in kafka-python's names (kafka/confluent_client.py translates them).
    security: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # {"consumer": {...}, "producer": {...}}: settings of the chosen client, in its own names.
    client_options: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    address: str = "127.0.0.1"
    port: int = 9108
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    source: str = "stdin"
    model: ModelConfig = field(default_factory=ModelConfig)
    groups: tuple[GroupConfig, ...] = ()
    max_streams: int = hyperparams.MAX_STREAMS.default
    max_state_bytes: int = 1 << 30
    max_models: int = 1000
    batch_size: int = 4096
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log_format: str = "plain"
    log_level: str = "INFO"

    def model_for(self, stream_id: str) -> tuple[str, ModelConfig]:
        """The (group name, model settings) for a stream: the first matching group wins."""
        for group in self.groups:
            if any(fnmatchcase(stream_id, pattern) for pattern in group.match):
                return group.name, group.model
        return DEFAULT_GROUP, self.model

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts/lists/scalars, in the shape of the YAML file (groups fully resolved)."""
        out = _plain(self)
        if out["input"]["header"] is None:
            out["input"]["header"] = "auto"  # as config/default.yaml spells it
        return out


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "input": InputConfig,
    "output": OutputConfig,
    "checkpoint": CheckpointConfig,
    "kafka": KafkaConfig,
    "metrics": MetricsConfig,
}


def load_config(
    path: str | os.PathLike[str] | None,
    env: Mapping[str, str] = os.environ,
    overrides: Mapping[str, object] = MappingProxyType({}),
) -> Config:
    """Build the effective configuration (see the module docstring for precedence)."""
    tree = _Tree()
    if path is not None:
        tree.add_yaml(os.fspath(path))
    tree.add_env(env)
    tree.add_overrides(overrides)
    return _build(tree)


def dump_yaml(config: Config, redact_secrets: bool = True) -> str:
    """The effective configuration as YAML that `load_config` reads back to the same Config."""
    data = config.to_dict()
    if redact_secrets:
        security = data["kafka"]["security"]
        for key in SECRET_KEYS & security.keys():
            security[key] = "<redacted>"
        for settings in data["kafka"]["client_options"].values():
            for key in settings:
                if any(word in key for word in SECRET_WORDS):
                    settings[key] = "<redacted>"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------- value specs


class _Bad(Exception):
    """A value does not fit its spec.

    `expect` says what was wanted; `subkey` names the offending entry when the value is a
    mapping checked as a whole (`kafka.security`), and `got` is then that entry's value.
    """

    def __init__(self, expect: str, subkey: str | None = None, got: Any = None):
        super().__init__(expect)
        self.expect, self.subkey, self.got = expect, subkey, got


class _Spec:
    """How one setting is checked, and how it is read when given as text."""

    expect = "a value"

    def check(self, value: Any) -> Any:
        """Return the value normalised (e.g. int -> float) or raise `_Bad`."""
        raise NotImplementedError

    def from_text(self, text: str) -> Any:
        try:
            return yaml.load(text, Loader=_Loader)
        except (yaml.YAMLError, ConfigError):  # ConfigError: over a document limit
            return text  # reported by `check` as "expected ..., got '<text>'"


class _Setting(_Spec):
    """A setting checked by the engine's table (engine/hyperparams.py: Number, Choice or Flag)."""

    def __init__(self, spec: Number | hyperparams.Choice | hyperparams.Flag):
        self.spec = spec
        self.expect = spec.expect

    def check(self, value: Any) -> Any:
        try:
            return self.spec.check(value)
        except SettingError as err:
            raise _Bad(err.expect) from None


class _Choice(_Spec):
    def __init__(self, options: tuple[str, ...], fold=None):
        self.options, self.fold = options, fold
        self.expect = "one of " + ", ".join(repr(o) for o in options)

    def check(self, value: Any) -> Any:
        if isinstance(value, str) and self.fold:
            value = self.fold(value)
        if value not in self.options:
            raise _Bad(self.expect)
        return value

    def from_text(self, text: str) -> Any:
        return text


class _Str(_Spec):
    def __init__(self, optional: bool = False):
        self.optional = optional
        self.expect = "non-empty string" + (" or null" if optional else "")

    def check(self, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not isinstance(value, str) or not value:
            raise _Bad(self.expect)
        return value

    def from_text(self, text: str) -> Any:
        # An empty value is an error, not null: `--state-dir ''` must not quietly mean "none".
        if self.optional and text.strip() in ("~", "null", "Null", "NULL"):
            return None
        return text


class _Delimiter(_Spec):
    """One character other than a quote or a line break; "tab" or "\\t" spell a tab (a shell
    passes '\\t' as two characters), "space" or "whitespace" a space, which stands for runs
    of spaces and tabs (io/parsers.py: WHITESPACE); None = sniff it."""

    expect = "one character (e.g. ';', ',', tab, space) or null"
    NAMES = MappingProxyType({"tab": "\t", "\\t": "\t", "space": " ", "whitespace": " "})

    def check(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = self.NAMES.get(value.lower(), value)
        if not isinstance(value, str) or len(value) != 1 or value in '"\r\n':
            raise _Bad(self.expect)
        return value

    def from_text(self, text: str) -> Any:
        # Verbatim: as YAML, '#' would be a comment and '|' a block scalar.
        return None if text.strip() in ("~", "null", "Null", "NULL") else text


class _Bool(_Spec):
    expect = "true or false"

    def check(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise _Bad(self.expect)
        return value


class _BoolOrAuto(_Bool):
    """true, false, or None (spelt null or 'auto'): decided from the data."""

    expect = "true, false or auto"

    def check(self, value: Any) -> Any:
        return None if value is None or value == "auto" else super().check(value)


class _StrList(_Spec):
    def __init__(self, nonempty: bool):
        self.nonempty = nonempty
        self.expect = ("non-empty " if nonempty else "") + "list of non-empty strings"

    def check(self, value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or (self.nonempty and not value):
            raise _Bad(self.expect)
        if not all(isinstance(v, str) and v for v in value):
            raise _Bad(self.expect)
        return tuple(value)

    def from_text(self, text: str) -> Any:
        """Comma-separated, a name that holds a comma in double quotes ("Pressure, bar",Temp),
        or a YAML list."""
        if text.lstrip().startswith("["):
            return super().from_text(text)
        return [part.strip() for part in next(csv.reader([text], skipinitialspace=True), []) if part.strip()]


class _Servers(_StrList):
    """Kafka bootstrap addresses, `host` or `host:port` (IPv6 in brackets): a port that is not a
    number reached the clients, confluent's as port 0 (failing 30 s later), kafka-python's as a
    bare ValueError."""

    def __init__(self):
        super().__init__(nonempty=True)
        self.expect = "non-empty list of host:port addresses (port a number from 1 to 65535)"

    def check(self, value: Any) -> Any:
        servers = super().check(value)
        for server in servers:
            host, colon, port = server.rpartition(":")
            if colon and not (host and host != "[" and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
                raise _Bad(self.expect)
        return servers


class _Security(_Spec):
    expect = "mapping of security settings (kafka-python's names)"

    def check(self, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _Bad(self.expect)
        checked = {}
        for key, item in value.items():
            if key not in SECURITY_KEYS:
                raise _Bad(f"one of {', '.join(sorted(SECURITY_KEYS))}", key, key)
            try:
                checked[key] = _security_item(key).check(item)
            except _Bad as bad:
                raise _Bad(bad.expect, key, item) from None
        return MappingProxyType(checked)


class _ClientOptions(_Spec):
    """Settings passed through verbatim to the client library, which checks their names."""

    expect = "mapping with 'consumer' and/or 'producer'"
    setting = "mapping of setting names to strings, numbers or booleans"

    def check(self, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _Bad(self.expect)
        checked = {}
        for part, settings in value.items():
            if part not in ("consumer", "producer"):
                raise _Bad("'consumer' or 'producer'", part, part)
            if not isinstance(settings, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in settings.items()):
                raise _Bad(self.setting, part, settings)
            checked[part] = MappingProxyType(dict(settings))
        return MappingProxyType(checked)


def _security_item(key: str) -> _Spec:
    return _Bool() if key == "ssl_check_hostname" else _Str()


_SPECS: dict[str, _Spec] = {
    **{f"model.{name}": _Setting(s.spec) for name, s in _MODEL_SETTINGS.items()},
    "source": _Choice(("stdin", "kafka")),
    "max_streams": _Setting(hyperparams.MAX_STREAMS.spec),
    "max_state_bytes": _Setting(Number(int, 1 << 24)),
    "max_models": _Setting(Number(int, 1)),
    "batch_size": _Setting(Number(int, 1)),
    "log_format": _Choice(("plain", "json")),
    "log_level": _Choice(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), fold=str.upper),
    "input.format": _Choice(("jsonl", "csv")),
    "input.stream_field": _Str(),
    "input.value_field": _Str(),
    "input.values_field": _Str(),
    "input.ts_field": _Str(),
    "input.delimiter": _Delimiter(),
    "input.header": _BoolOrAuto(),
    "input.columns": _StrList(nonempty=False),
    "input.exclude_columns": _StrList(nonempty=False),
    "input.max_line_bytes": _Setting(Number(int, 1)),
    "input.default_stream": _Str(),
    "input.max_abs_value": _Setting(Number(float, 0, False, VALUE_LIMIT, True)),
    "output.only_anomalies": _Bool(),
    "checkpoint.state_dir": _Str(optional=True),
    "checkpoint.every_events": _Setting(Number(int, 1)),
    "checkpoint.every_seconds": _Setting(Number(float, 0, lo_inc=False)),
    "checkpoint.keep": _Setting(Number(int, 1)),
    "kafka.client": _Choice(("confluent", "kafka-python")),
    "kafka.bootstrap_servers": _Servers(),
    "kafka.topics": _StrList(nonempty=False),
    "kafka.group_id": _Str(),
    "kafka.output_topic": _Str(),
    "kafka.dead_letter_topic": _Str(),
    "kafka.changelog_topic": _Str(optional=True),
    "kafka.key_source": _Choice(("key", "field")),
    "kafka.output_mode": _Choice(("batch", "event")),
    "kafka.poll_max_records": _Setting(Number(int, 1)),
    "kafka.poll_timeout_ms": _Setting(Number(int, 0)),
    "kafka.session_timeout_ms": _Setting(Number(int, 1)),
    "kafka.heartbeat_interval_ms": _Setting(Number(int, 1)),
    "kafka.processing_guarantee": _Choice(GUARANTEES),
    "kafka.transactional_id": _Str(optional=True),
    "kafka.security": _Security(),
    "kafka.client_options": _ClientOptions(),
    "metrics.address": _Str(),
    "metrics.port": _Setting(Number(int, 0, True, 65535, True)),
    "metrics.enabled": _Bool(),
}

_TOP_SCALARS = ("source", "max_streams", "max_state_bytes", "max_models", "batch_size", "log_format", "log_level")
_TOP_KEYS = [f.name for f in fields(Config)]


def _text_spec(path: tuple) -> _Spec | None:
    """The spec used to read a text value set at `path`, if the path names a setting."""
    if len(path) == 3 and path[:2] == ("kafka", "security"):
        return _security_item(path[2])
    return _SPECS.get(".".join(path))


# --------------------------------------------------------------------------- layering


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float, and enforces the document limits.

    PyYAML follows YAML 1.1, where a float needs a dot (`1.0e-3`); `learning_rate: 1e-3`
    would otherwise arrive as the string '1e-3'. The limits are checked while composing,
    before anything is constructed: each node's size counts its aliased children in full,
    so an alias bomb stops at its first node over `MAX_NODES`.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._open: set[str] = set()  # anchors of the nodes being composed
        self._sizes: dict[int, int] = {}  # id(node) -> its node count with aliases expanded

    def _refuse(self, mark, problem: str) -> ConfigError:
        return ConfigError(f"{self.name}:{mark.line + 1}: {problem}")

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise self._refuse(event.start_mark, f"alias *{event.anchor} refers to a node that contains it")
            return super().compose_node(parent, index)
        if self._depth == MAX_DEPTH:
            raise self._refuse(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        self._open.add(event.anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(event.anchor)
        if isinstance(node, yaml.ScalarNode):
            children = []
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = [child for pair in node.value for child in pair]
        size = self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
        if size > MAX_NODES:
            raise self._refuse(node.start_mark, f"more than {MAX_NODES} nodes (counting each use of an alias)")
        return node


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class _LineDict(dict):
    """A YAML mapping that remembers the 1-based line of each key."""

    line = 0
    lines: dict


class _LineLoader(_Loader):
    """SafeLoader whose mappings are `_LineDict`s, so errors can cite file:line."""

    def construct_line_map(self, node: yaml.MappingNode):
        data = _LineDict()
        data.line = node.start_mark.line + 1
        data.lines = {}
        yield data
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node)
            if key in seen and key != "<<":
                # PyYAML silently keeps the last duplicate; a second `model:` is a mistake.
                raise ConfigError(f"{self.name}:{key_node.start_mark.line + 1}: "
                                  f"duplicate key {key!r}")
            seen.add(key)
        data.update(self.construct_mapping(node))
        for key_node, _ in node.value:
            data.lines.setdefault(self.construct_object(key_node), key_node.start_mark.line + 1)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_line_map)


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Tree:
    """Raw settings merged from all layers, plus where each one came from."""

    def __init__(self) -> None:
        self.data: dict = {}
        self.where: dict[tuple, str] = {}

    def source(self, path: tuple) -> str:
        """Where the value at `path` (or the nearest enclosing one) was set."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.where:
                return self.where[path[:n]]
        return "defaults"

    def explicit(self, path: tuple) -> bool:
        return path in self.where

    def error(self, path: tuple, problem: str) -> ConfigError:
        return ConfigError(f"{self.source(path)}: {_dotted(path)}: {problem}")

    def add_yaml(self, filename: str) -> None:
        try:
            with open(filename, "rb") as fh:
                text = fh.read(MAX_BYTES + 1)
            if len(text) > MAX_BYTES:
                raise ConfigError(f"{filename}: larger than {MAX_BYTES} bytes, the limit for config files")
            loader = _LineLoader(text)
            loader.name = filename
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
        except OSError as exc:
            raise ConfigError(f"{filename}: cannot read config file: {exc.strerror}") from exc
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{filename}:{mark.line + 1}" if mark else filename
            raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{filename}: invalid YAML: {exc}") from exc
        if data is None:  # an empty file means "all defaults"
            return
        if not isinstance(data, dict):
            raise ConfigError(f"{filename}:1: expected a mapping at the top level")
        self._record_yaml(data, (), filename)
        self.data = data

    def _record_yaml(self, node: Any, path: tuple, filename: str) -> None:
        if isinstance(node, _LineDict):
            for key, value in node.items():
                self.where[path + (key,)] = f"{filename}:{node.lines.get(key, node.line)}"
                self._record_yaml(value, path + (key,), filename)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, _LineDict):
                    self.where[path + (i,)] = f"{filename}:{item.line}"
                self._record_yaml(item, path + (i,), filename)

    def add_env(self, env: Mapping[str, str]) -> None:
        found = []
        for name, text in env.items():
            if not name.startswith(ENV_PREFIX):
                continue
            path = tuple(name[len(ENV_PREFIX):].lower().split("__"))
            if len(path) == 1 and path[0] not in _TOP_KEYS:
                # Not a config variable (e.g. STREAMLSTM_CONFIG for the CLI), unless it nearly
                # names a setting: STREAMLSTM_MAX_STREAM, or STREAMLSTM_MODEL_HIDDEN_SIZE with one `_`.
                close = difflib.get_close_matches(path[0], [k.replace(".", "__") for k in _SPECS], n=1, cutoff=0.85)
                if close:
                    raise ConfigError(f"environment variable {name}: not a setting (did you mean "
                                      f"{ENV_PREFIX}{close[0].upper()}?)")
                continue
            found.append((path, text, f"environment variable {name}"))
        self._apply(found)

    def add_overrides(self, overrides: Mapping[str, object]) -> None:
        found = []
        for key, value in overrides.items():
            if value is None:
                continue  # a flag that was not given
            path = tuple(key.split("."))
            if not all(path):
                raise ConfigError(f"command line: {key!r}: malformed dotted key")
            found.append((path, value, "command line"))
        self._apply(found)

    def _apply(self, items: list[tuple[tuple, Any, str]]) -> None:
        # Shallow paths first so `STREAMLSTM_MODEL__K2` refines `STREAMLSTM_MODEL='{...}'`.
        for path, value, source in sorted(items, key=lambda item: (len(item[0]), item[0])):
            if isinstance(value, str):
                spec = _text_spec(path)
                value = spec.from_text(value) if spec else _Spec().from_text(value)
            self._set(path, value, source)

    def _set(self, path: tuple, value: Any, source: str) -> None:
        node = self.data
        for n, key in enumerate(path[:-1], start=1):
            if not isinstance(node.get(key), dict):
                node[key] = {}
                self.where.setdefault(path[:n], source)
            node = node[key]
        # A layer replaces what it sets, so stale provenance below it must go.
        for old in [p for p in self.where if p[:len(path)] == path]:
            del self.where[old]
        node[path[-1]] = value
        self.where[path] = source


# --------------------------------------------------------------------------- building


def _check(tree: _Tree, path: tuple, spec: _Spec, value: Any) -> Any:
    try:
        return spec.check(value)
    except _Bad as bad:
        if bad.subkey is not None:
            path, value = path + (bad.subkey,), bad.got
        raise tree.error(path, f"expected {bad.expect}, got {value!r}") from None


def _unknown(tree: _Tree, path: tuple, key: Any, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return tree.error(path + (key,), f"unknown key{hint}")


def _section(tree: _Tree, cls: type, raw: Any, path: tuple, spec_section: str,
             base: Any = None) -> Any:
    """Build section `cls` from mapping `raw`; missing keys come from `base` or the defaults."""
    if not isinstance(raw, Mapping):
        raise tree.error(path, f"expected a mapping, got {raw!r}")
    names = [f.name for f in fields(cls)]
    for key in raw:
        if key not in names:
            raise _unknown(tree, path, key, names)
    kwargs = {}
    for name in names:
        if name in raw:
            kwargs[name] = _check(tree, path + (name,), _SPECS[f"{spec_section}.{name}"], raw[name])
        elif base is not None:
            kwargs[name] = getattr(base, name)
    return cls(**kwargs)


def _check_model(tree: _Tree, model: ModelConfig, path: tuple) -> None:
    problem = hyperparams.check_window(model.k1, model.k2)
    if problem:
        # Blame the setting the user actually wrote at this level.
        key = "k2" if tree.explicit(path + ("k2",)) or not tree.explicit(path + ("k1",)) else "k1"
        raise tree.error(path + (key,), problem)


def _groups(tree: _Tree, raw: Any, model: ModelConfig) -> tuple[GroupConfig, ...]:
    if not isinstance(raw, list):
        raise tree.error(("groups",), f"expected a list of groups, got {raw!r}")
    groups, names = [], {DEFAULT_GROUP}
    for i, item in enumerate(raw):
        path = ("groups", i)
        if not isinstance(item, Mapping):
            raise tree.error(path, f"expected a mapping with name, match, model; got {item!r}")
        for key in item:
            if key not in ("name", "match", "model"):
                raise _unknown(tree, path, key, ["name", "match", "model"])
        for key in ("name", "match"):
            if key not in item:
                raise tree.error(path, f"missing required key {key!r}")
        name = _check(tree, path + ("name",), _Str(), item["name"])
        if name in names:
            raise tree.error(path + ("name",), f"group name {name!r} is reserved or repeated")
        names.add(name)
        match = _check(tree, path + ("match",), _StrList(nonempty=True), item["match"])
        group_model = _section(tree, ModelConfig, item.get("model", {}), path + ("model",),
                               "model", base=model)
        _check_model(tree, group_model, path + ("model",))
        groups.append(GroupConfig(name=name, match=match, model=group_model))
    return tuple(groups)


def _check_fields(tree: _Tree, cfg: InputConfig) -> None:
    """The stream, value, values and time fields need names of their own: one name in two
    roles would read one field as both (a value as its own timestamp)."""
    roles = ("stream_field", "value_field", "values_field", "ts_field")
    for i, first in enumerate(roles):
        for second in roles[i + 1:]:
            if getattr(cfg, first) == getattr(cfg, second):
                blamed, other = (second, first) if tree.explicit(("input", second)) else (first, second)
                raise tree.error(("input", blamed), f"{getattr(cfg, blamed)!r} is input.{other} too: each of "
                                 "input.stream_field, value_field, values_field and ts_field needs a name of its own")


def _build(tree: _Tree) -> Config:
    data = tree.data
    for key in data:
        if key not in _TOP_KEYS:
            raise _unknown(tree, (), key, _TOP_KEYS)
    kwargs: dict[str, Any] = {
        name: _section(tree, cls, data.get(name, {}), (name,), name)
        for name, cls in SECTIONS.items()
    }
    _check_model(tree, kwargs["model"], ("model",))
    kwargs["groups"] = _groups(tree, data.get("groups", []), kwargs["model"])
    for name in _TOP_SCALARS:
        if name in data:
            kwargs[name] = _check(tree, (name,), _SPECS[name], data[name])
    config = Config(**kwargs)
    _check_fields(tree, config.input)
    if config.source == "kafka" and not config.kafka.topics:
        raise tree.error(("kafka", "topics"), "at least one topic is required when source is kafka")
    if config.source == "kafka":
        _check_topics(tree, config.kafka)
    if config.kafka.processing_guarantee == "exactly_once":
        _check_exactly_once(tree, config)
    return config


def _check_topics(tree: _Tree, k: KafkaConfig) -> None:
    """No topic the daemon writes is one it reads (it would score its own results, or its
    dead letters would be read back as bad input and nest, without end), and the changelog
    holds nothing but snapshots."""
    written = [("output_topic", k.output_topic), ("dead_letter_topic", k.dead_letter_topic),
               ("changelog_topic", k.changelog_topic)]
    for key, topic in written:
        if topic in k.topics:
            raise tree.error(("kafka", key), f"{topic!r} is also an input topic (kafka.topics): the daemon would "
                             "read back what it writes there, without end")
    for key, topic in written[:2]:
        if topic == k.changelog_topic:
            raise tree.error(("kafka", "changelog_topic"), f"{topic!r} is also kafka.{key}: the changelog must "
                             "hold only the state's snapshots")


# Brokers abort a transaction open longer than transaction.max.timeout.ms, 15 minutes by default;
# the daemon's transactions last a checkpoint interval and a minute (kafka/daemon.py).
TRANSACTION_MAX_S = 900.0
TRANSACTION_MARGIN_S = 60.0


def _check_exactly_once(tree: _Tree, config: Config) -> None:
    k = config.kafka
    if not k.changelog_topic:
        raise tree.error(("kafka", "processing_guarantee"), "exactly_once needs kafka.changelog_topic: the "
                         "state must be committed in the same transaction as the offsets")
    if config.checkpoint.every_seconds > TRANSACTION_MAX_S - TRANSACTION_MARGIN_S:
        raise tree.error(("checkpoint", "every_seconds"), f"at most {TRANSACTION_MAX_S - TRANSACTION_MARGIN_S:g} "
                         "under exactly_once: each checkpoint interval is a transaction, which brokers abort after "
                         f"transaction.max.timeout.ms ({TRANSACTION_MAX_S / 60:g} minutes by default)")
    producer = k.client_options.get("producer", {})
    if "acks" in producer and str(producer["acks"]).lower() not in ("all", "-1"):
        raise tree.error(("kafka", "client_options", "producer", "acks"), f"{producer['acks']!r} contradicts "
                         "exactly_once, which needs acks=all")
    for key in ("enable.idempotence", "enable_idempotence"):
        if key in producer and str(producer[key]).lower() in ("false", "0"):
            raise tree.error(("kafka", "client_options", "producer", key), "false contradicts exactly_once, "
                             "which needs an idempotent producer")


def _plain(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    return obj
