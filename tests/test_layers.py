"""The package's layering (STYLE.md): imports only point down, and no module imports another
module's private names. Read from the source with ``ast``, so a violation fails here, not in review."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tsvq"

# What each layer may import from tsvq (besides itself and the private support modules).
ALLOWED = {
    "ops": set(),
    "nn": {"ops"},
    "data": {"ops", "nn"},
    "models": {"ops", "nn", "data"},
    "eval": set(),
    "config": {"models"},
    "engine": {"ops", "nn", "data", "models", "eval", "config"},
    "report": {"eval"},
    "recipes": {"ops", "nn", "data", "models", "eval", "config", "engine", "report"},
}
SUPPORT = {"_extension", "_random", "_C"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        yield path, list(rel.parts)


def _imports(path: Path, parts: list[str]):
    """(absolute tsvq module path as parts, imported names) of every ``from ... import`` in ``path``."""
    tree = ast.parse(path.read_text())
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "tsvq":
                target = node.module.split(".")[1:]
            else:
                continue
            yield target, [a.name for a in node.names]


def _is_module(parts: list[str]) -> bool:
    p = PACKAGE.joinpath(*parts)
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists() or parts[-1] == "_C"


def test_imports_point_down():
    bad = []
    for path, parts in _modules():
        layer = parts[0] if len(parts) > 1 else parts[0]
        if layer not in ALLOWED:
            continue
        for target, names in _imports(path, parts):
            if not target:  # "from .. import x": the imported names are the modules
                targets = [[n] for n in names]
            else:
                targets = [target]
            for t in targets:
                top = t[0]
                if top == layer or top in SUPPORT or top not in ALLOWED and not _is_module([top]):
                    continue
                if top not in ALLOWED[layer]:
                    bad.append(f"{path.relative_to(PACKAGE)} imports tsvq.{'.'.join(t)}")
    assert not bad, "\n".join(bad)


def test_no_private_names_imported_across_modules():
    bad = []
    for path, parts in _modules():
        for target, names in _imports(path, parts):
            for name in names:
                if name.startswith("_") and not _is_module(target + [name]) and target[-1:] != ["_C"]:
                    bad.append(f"{path.relative_to(PACKAGE)}: from tsvq.{'.'.join(target)} import {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("words", ["2026-", "2025-", "measured once", "written since", "H200", "H100 run", "Xeon", "EPYC",
                                   "not yet timed", "first GPU"])
def test_code_comments_carry_no_dates_or_run_history(words):
    """Measurements and history live in docs/ and benchmarks/RESULTS.md, not in code comments."""
    hits = []
    for root in (PACKAGE, PACKAGE.parent / "csrc"):
        for path in root.rglob("*"):
            if path.suffix not in (".py", ".cpp", ".cu", ".cuh", ".h"):
                continue
            for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if words.lower() in line.lower():
                    hits.append(f"{path.relative_to(PACKAGE.parent)}:{i}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)
