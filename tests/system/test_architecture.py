"""The structure the code promises (README "Architecture"), checked from the source itself.

Imports are read with ``ast`` from every module of ``appliance``, ``drivers`` and ``tui``
-- module level, inside functions and under ``TYPE_CHECKING`` alike -- and the rules are
checked on that graph.  A failure names the module and the import that breaks the rule.
"""

from __future__ import annotations

import ast
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from tests.fixtures import ROOT

PACKAGES = ("appliance", "drivers", "tui")
STDLIB = sys.stdlib_module_names
MAX_LINES = 400
#: Attributes of third-party objects read although private, each for a stated reason.
THIRD_PARTY_PRIVATE = {
    "_data",  # pypdf StreamObject: the encoded bytes (get_data() decodes them, unbounded)
    "_pool_manager",  # pebble: where its worker processes are (for worker_pids)
    "_add_object",  # pypdf PdfWriter: no public way to add an indirect object (marks overlay)
    "_getframe",
    "_exit",
    "_replace",  # namedtuple
    "_asdict",
    "_fields",
    # Textual Screen/App: marks a screen styled from the current stylesheet, so its first
    # visits do not re-apply all the console's CSS (tui.app.styled_now)
    "_css_update_count",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            out[module_name(path)] = path
    return out


@lru_cache(maxsize=None)
def tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text())


def _targets(name: str, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = name if modules()[name].name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    out = [target]
    out += [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules()]
    return out


@lru_cache(maxsize=None)
def imports(name: str) -> tuple[tuple[str, int], ...]:
    """(imported module, line) for every import in module ``name``; ours resolved to modules."""
    out = []
    for node in ast.walk(tree(name)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in _targets(name, node):
                while target not in modules() and "." in target and target.split(".")[0] in PACKAGES:
                    target = target.rpartition(".")[0]
                out.append((target, node.lineno))
    return tuple(out)


def ours(name: str) -> set[str]:
    return {t for t, _ in imports(name) if t in modules() and t != name}


def _top(name: str) -> str:
    return name.split(".")[0]


def test_no_import_cycles():
    # A package's __init__ re-exporting its modules is not a cycle of design: its edges out
    # are left out (a module importing its own package's __init__ still counts).
    graph = {m: (set() if modules()[m].name == "__init__.py" else ours(m)) for m in modules()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _violations(prefix: str, allowed) -> list[str]:
    bad = []
    for name in modules():
        if name != prefix and not name.startswith(prefix + "."):
            continue
        for target, line in imports(name):
            root = target.split(".")[0]
            if root in STDLIB or root == "__future__":
                continue
            if not allowed(target):
                bad.append(f"{name}:{line} imports {target}")
    return bad


def test_core_imports_only_the_standard_library_and_core():
    assert not _violations("appliance.core", lambda t: t.startswith("appliance.core"))


def test_drivers_import_only_drivers_core_and_the_journal():
    allowed = ("drivers", "appliance.core", "appliance.store.journal")
    third_party = ("cups", "serial", "pypdf", "segno", "httpx")
    assert not _violations("drivers", lambda t: t.startswith(allowed) or t.split(".")[0] in third_party)


def test_no_real_driver_imports_the_simulators():
    bad = []
    for name in modules():
        if not name.startswith("drivers.") or name.startswith("drivers.sim"):
            continue
        bad += [f"{name}:{line} imports {t}" for t, line in imports(name) if t.startswith("drivers.sim")]
    assert not bad


def test_the_console_talks_only_to_the_control_client_and_the_core():
    bad = [v for v in _violations("tui", lambda t: not t.startswith("appliance")
                                  or t == "appliance.control.client" or t.startswith("appliance.core"))]
    assert not bad


ASSEMBLED = ("Pipeline", "ControlServer", "MiService")


def test_only_runtime_assembles_the_daemon():
    bad = []
    for name in modules():
        if name.startswith("appliance.runtime"):
            continue
        for node in ast.walk(tree(name)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ASSEMBLED):
                bad.append(f"{name}:{node.lineno} builds {node.func.id}")
    assert not bad


def test_every_command_is_registered_in_appliance_cli():
    bad = []
    for name in modules():
        if name.startswith("appliance.cli"):
            continue
        for node in ast.walk(tree(name)):
            if isinstance(node, ast.FunctionDef) and node.name == "register":
                bad.append(f"{name}:{node.lineno} defines register()")
    assert not bad


def test_no_module_reads_another_modules_private_names():
    bad = []
    for name in modules():
        for node in ast.walk(tree(name)):
            if isinstance(node, ast.ImportFrom):
                bad += [f"{name}:{node.lineno} imports {a.name} from {node.module}"
                        for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Attribute):
                attr = node.attr
                if not attr.startswith("_") or attr.startswith("__") or attr in THIRD_PARTY_PRIVATE:
                    continue
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                    continue
                if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                    continue
                bad.append(f"{name}:{node.lineno} reads .{attr}")
    assert not bad, "\n".join(bad)


def test_long_modules_say_why():
    bad = []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_LINES and "# Size:" not in text:
            bad.append(f"{name}: {text.count(chr(10))} lines and no '# Size:' comment saying why")
    assert not bad


@pytest.mark.parametrize("rule", ["core", "drivers"])
def test_the_rules_can_fail(rule, tmp_path, monkeypatch):
    """The checker itself: a forbidden import is seen."""
    fake = {"core": ("appliance.core.fake", "import httpx\n"),
            "drivers": ("drivers.fake", "from appliance.pipeline.pipeline import Pipeline\n")}[rule]
    path = tmp_path / "fake.py"
    path.write_text(fake[1])
    real = dict(modules())
    monkeypatch.setattr(sys.modules[__name__], "modules", lambda: {**real, fake[0]: path})
    tree.cache_clear()
    imports.cache_clear()
    try:
        if rule == "core":
            assert _violations("appliance.core", lambda t: t.startswith("appliance.core"))
        else:
            assert _violations("drivers", lambda t: t.startswith(("drivers", "appliance.core")))
    finally:
        tree.cache_clear()
        imports.cache_clear()
