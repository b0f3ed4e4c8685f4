"""The package's import graph reads top-down (docs/architecture.md draws these layers):
a module imports only from its own layer or the layers below it, lazily or not."""

import ast
from pathlib import Path

import streamlstm

PACKAGE = Path(streamlstm.__file__).parent

# Bottom first. A name is a module or a subpackage (all its modules).
LAYERS = [
    ["engine"],  # cells, kernels, scoring, state and its layout, engines, hyperparameters, snapshots
    ["event", "config", "signals"],  # records of parsed input, the service configuration, signal hand-over
    ["multistream"],  # MultiStreamDetector
    ["budget"],  # the process-wide state limits
    ["pool", "detector"],  # routing events to detectors; the river API
    ["io"],  # parsing, records, sinks, the pipeline, the filter loop, checkpoints, plots
    ["kafka", "evaluate"],  # the daemon; detection quality
    ["cli", "__init__"],  # the command; the lazy public names and the version
    ["launcher"],  # the console script
]


def layer_of(module: str) -> int:
    """The layer of a module given as its dotted path below streamlstm ("io.sinks")."""
    for n, names in enumerate(LAYERS):
        if module.split(".")[0] in names:
            return n
    raise AssertionError(f"streamlstm.{module} is in no layer of this test: add it")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def imports(source: str, here: str) -> list[str]:
    """The streamlstm modules that module `here` (its source text) imports, relative or
    absolute, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            package = here.split(".")[: len(here.split(".")) - node.level]
        elif node.module and node.module.split(".")[0] == "streamlstm":
            package = []
        else:
            continue
        module = (node.module or "").removeprefix("streamlstm").lstrip(".") if not node.level else node.module
        if module:
            found.append(".".join([*package, module]))
        else:  # `from . import a, b`: modules, or names of the package itself (__version__)
            for alias in node.names:
                name = ".".join([*package, alias.name])
                found.append(name if _is_module(name) else ".".join(package) or "__init__")
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def test_every_import_goes_down_or_sideways():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = module_name(path)
        for target in imports(path.read_text(), module):
            if layer_of(target) > layer_of(module):
                upward.append(f"streamlstm.{module} imports streamlstm.{target}")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import():
    """The test above can fail: an engine module importing the pool, lazily, is caught."""
    source = "def f():\n    from ..pool import DetectorPool\n    from . import scoring\n"
    assert imports(source, "engine.kernels_cpu") == ["pool", "engine.scoring"]
    assert layer_of("pool") > layer_of("engine.kernels_cpu")
