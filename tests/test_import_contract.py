"""The import contract (issue 22): Qt only in the GUI, the engine's layers in order, no circles.

Checked with a real tool, import-linter (.importlinter at the repository root), as napari does,
plus two things it does not check: every top-level module has a layer (a new one cannot slip
past the contract), and no module imports itself round a circle (lazy imports inside functions
count: a circle is a circle, whenever it closes)."""

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"

grimp = pytest.importorskip("grimp", reason="import-linter is in the test extra: pip install -e .[test]")


def layered_modules() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    layers = parser["importlinter:contract:layers"]["layers"]
    return {name.strip() for line in layers.splitlines() for name in line.replace(":", "|").split("|") if name.strip()}


def test_the_import_contract_is_kept():
    program = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(program), "--config", str(CONFIG), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_every_top_level_module_has_a_layer():
    graph = grimp.build_graph("kartstudio", cache_dir=None)
    tops = {".".join(m.split(".")[:2]) for m in graph.modules if m.count(".") >= 1}
    tops -= {"kartstudio.__main__"}  # `python -m kartstudio`: the CLI's own entry
    assert tops - layered_modules() == set(), "add these to a layer in .importlinter"


def test_no_module_imports_itself_round_a_circle():
    graph = grimp.build_graph("kartstudio", cache_dir=None)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    # Tarjan's strongly connected components, iteratively (no recursion limit to meet).
    index, low, on_stack, stack, circles = {}, {}, set(), [], []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            for target in targets:
                if target in on_stack:
                    low[node] = min(low[node], low[target])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    assert circles == []
