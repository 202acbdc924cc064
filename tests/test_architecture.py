"""The layout holds: the module map documents the tree, no module reaches into another's private
names, and importing the package stays light."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "memory_graph"
# Row._mapping (SQLAlchemy) and the namedtuple methods are public API despite their underscore.
PUBLIC_UNDERSCORED = {"_mapping", "_asdict", "_replace", "_fields"}


def test_architecture_module_map_matches_the_tree() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    mapped = set(re.findall(r"^\| `(memory_graph/[\w/]+\.py)` \|", text, re.M))
    modules = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")}
    assert modules - mapped == set(), "modules missing from docs/architecture.md's module map"
    assert mapped - modules == set(), "docs/architecture.md maps modules that do not exist"


def test_architecture_no_module_uses_another_modules_private_names() -> None:
    found = []
    for root in ("memory_graph", "tests", "benchmarks", "pipelines", "migrations"):
        for path in (ROOT / root).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("memory_graph"):
                    found += [f"{path}:{node.lineno} {a.name}" for a in node.names if _private(a.name)]
                elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in PUBLIC_UNDERSCORED:
                    owner = node.value
                    if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                        found.append(f"{path}:{node.lineno} .{node.attr}")
    assert found == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_architecture_import_is_light() -> None:
    """``import memory_graph`` loads no analysis stack and starts no thread: a web worker or a
    CLI call pays for neither."""
    script = (
        "import sys, threading\n"
        "import memory_graph\n"
        "heavy = [m for m in ('networkx', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "print(heavy, threading.active_count())\n"
        "memory_graph.to_networkx\n"
        "print('networkx' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split("\n")[:2] == ["[] 1", "True"]
