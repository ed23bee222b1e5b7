"""The package's structure: no import cycles (counting imports inside functions), tasks and
capabilities resolved through registries, not strings."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "unirank"


def _modules() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _targets(mods: dict[str, Path], module: str, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        pkg = module if mods[module].name == "__init__.py" else module.rsplit(".", 1)[0]
        base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
        mod = ".".join(base + ([node.module] if node.module else []))
        names = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
    out = []
    for t in names:
        while t not in mods and "." in t:
            t = t.rsplit(".", 1)[0]
        if t in mods and t != module:
            out.append(t)
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> modules it imports anywhere (top level or inside functions), except under ``if TYPE_CHECKING``."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        typing_only = {
            id(s)
            for n in ast.walk(tree)
            if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING"
            for s in ast.walk(n)
        }
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in typing_only:
                graph[m].update(_targets(mods, m, node))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan).

    >>> cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    [['b', 'a']]
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_package_imports_itself_relatively():
    """One import style inside the package: ``from ..x import y``, never ``from unirank.x``
    (doctests, which run as a user would, may import absolutely)."""
    absolute = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "unirank":
                absolute.append(f"{name}:{node.lineno}")
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "unirank" for a in node.names):
                absolute.append(f"{name}:{node.lineno}")
    assert absolute == []


def test_the_training_loop_and_the_eval_config_know_no_task_by_name():
    for path in ("train.py", "training/config.py", "training/data.py", "eval/config.py", "cli.py"):
        text = (ROOT / path).read_text(encoding="utf-8")
        assert '== "response"' not in text and '!= "response"' not in text and '== "retrieval"' not in text, path


def test_literal_choices_are_checked_by_the_config_loader_with_the_yaml_line(tmp_path):
    import pytest

    from unirank.config import load_config
    from unirank.errors import ConfigError
    from unirank.train import TrainConfig

    path = tmp_path / "c.yaml"
    path.write_text("epochs: 1\ndata:\n  negative_choice: best\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3.*'data.negative_choice': 'best' is unknown; valid: first, random"):
        load_config(TrainConfig, path)
    with pytest.raises(ConfigError, match=r"'dtype': 'fp16' is unknown; valid: bf16, null"):
        load_config(TrainConfig, None, ["dtype=fp16"])
    assert load_config(TrainConfig, None, ["dtype=null", "export=last"]).export == "last"


def test_ruff_lint_and_format_are_clean():
    """The `[tool.ruff]` rules of pyproject.toml hold for the package, the tests and the benches."""
    import shutil
    import subprocess
    import sys

    import pytest

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the test extra)")
    paths = ["unirank", "tests", "bench"]
    for args in (["check", "--quiet", *paths], ["format", "--check", "--quiet", *paths]):
        r = subprocess.run([ruff, *args], cwd=ROOT.parent, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]
