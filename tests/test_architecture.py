"""The package's layering (docs/architecture.md): imports go downward, no circles, light entry points, aliases."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skal_seg"

#: Old module paths kept one release as aliases (skal_seg._moved).
ALIASES = ("skal_seg.experiment", "skal_seg.plotting", "skal_seg.labeling.simulate", "skal_seg.models",
           "skal_seg.adm", "skal_seg.embedded", "skal_seg.train_ddpm")


def layer(module: str) -> int:
    """The layer of a module of the package, bottom 0 (docs/architecture.md's table)."""
    if module in ALIASES:
        return 7  # nothing may import an alias
    last = module.rsplit(".", 1)[-1]
    if module == "skal_seg.cli" or (module.count(".") == 2 and last in ("cli", "commands")):
        return 6
    for prefix, n in (("skal_seg.benchmark", 5), ("skal_seg.labeling", 4), ("skal_seg.engine", 3),
                      ("skal_seg.diffusion", 1)):
        if module == prefix or module.startswith(prefix + "."):
            return n
    if last in ("herding", "uncertainty", "uncertainty_herding", "query", "classifier", "featurizer",
                "filter_bank", "concat", "distributed"):
        return 2
    return 0  # data, metrics, the _private helpers, the package itself


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Package modules imported anywhere in a file (inside functions too, not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in found if m in known}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, set(mods)) - {name} for name, path in mods.items()}


def test_no_import_circle(graph):
    """Tarjan's strongly connected components: each module is alone in its own."""
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                circles.append(sorted(part))

    for v in graph:
        if v not in index:
            visit(v)
    assert circles == []


def test_imports_run_downward_only(graph):
    upward = [f"{a} ({layer(a)}) -> {b} ({layer(b)})" for a, targets in graph.items() for b in targets
              if layer(b) > layer(a) and not (b == "skal_seg" or a.startswith(b + "."))]
    assert upward == []


def test_the_layers_are_the_documented_ones():
    """A module added under a new name lands in a layer on purpose: this list is docs/architecture.md's."""
    assert layer("skal_seg.engine.rounds") == 3 and layer("skal_seg.benchmark.runner") == 5
    assert layer("skal_seg.labeling.project") == 4 and layer("skal_seg.labeling.cli") == 6
    assert layer("skal_seg.diffusion.models") == 1 and layer("skal_seg.query") == 2 and layer("skal_seg.data") == 0


@pytest.mark.parametrize("code", [
    "import skal_seg",
    "import skal_seg.labeling",
    "import skal_seg.cli; skal_seg.cli._parser()",
    "import skal_seg.labeling.commands",  # status, import, export: the record only
])
def test_entry_points_import_neither_torch_nor_diffusers(code):
    check = "; import sys; print(sorted(m for m in ('torch', 'diffusers', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_help_and_version_run_without_torch():
    code = ("import sys, runpy\nsys.argv = ['skal-seg', *sys.argv[1:]]\nfrom skal_seg.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('torch', 'diffusers') if m in sys.modules))")
    for args in (["--help"], ["--version"], ["run", "--help"], ["init", "--help"], ["convert-adm", "--help"]):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
        assert "LOADED []" in out.stdout, (args, out.stdout[-300:])


@pytest.mark.parametrize("old, name, new", [
    ("skal_seg.experiment", "run_experiment", "skal_seg.benchmark.runner"),
    ("skal_seg.experiment", "ExperimentConfig", "skal_seg.engine.settings"),
    ("skal_seg.experiment", "FeatureCache", "skal_seg.engine.features"),
    ("skal_seg.experiment", "train_classifier", "skal_seg.engine.rounds"),
    ("skal_seg.plotting", "markdown_summary", "skal_seg.benchmark.plotting"),
    ("skal_seg.labeling.simulate", "GroundTruthAnnotator", "skal_seg.benchmark.simulate"),
    ("skal_seg.models", "load_diffusion_model", "skal_seg.diffusion.models"),
    ("skal_seg.adm", "paper_blocks", "skal_seg.diffusion.adm"),
    ("skal_seg.embedded", "EMBEDDED_UNET_CONFIG", "skal_seg.diffusion.embedded"),
    ("skal_seg.train_ddpm", "denoising_loss", "skal_seg.diffusion.train_ddpm"),
])
def test_moved_modules_still_import_and_warn(old, name, new):
    import importlib

    alias = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old} moved: import {name} from {new}"):
        value = getattr(alias, name)
    assert value is getattr(importlib.import_module(new), name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            alias.no_such_name


def test_the_package_itself_never_imports_an_alias(graph):
    assert [a for a, targets in graph.items() for b in targets if b in ALIASES] == []


def test_modules_stay_short_or_say_why():
    """About 800 lines at most; a longer module says why in its docstring ("Why one module: ...")."""
    long = []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > 820 and "Why one module" not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{name}: {text.count(chr(10))} lines")
    assert long == []
