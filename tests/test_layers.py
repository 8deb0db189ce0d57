"""Arrows point down: lower layers never import higher ones (DEVELOPERS: layout)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "pixels2peaks"

#: package -> packages it must not import
FORBIDDEN = {
    "terrain": ("evaluation", "diffusion", "perception", "pipeline", "cli", "training", "camera", "studio"),
    "diffusion": ("evaluation", "pipeline", "cli", "training", "perception", "studio"),
    "perception": ("evaluation", "pipeline", "cli", "diffusion", "studio"),
    "camera": ("evaluation", "pipeline", "cli", "diffusion", "perception", "training", "studio"),
    "pipeline": ("cli", "studio"),
    "io": ("cli", "studio", "pipeline"),
    "evaluation": ("cli", "studio", "pipeline"),
    "studio": ("cli",),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_imports(package):
    bad = []
    for f in sorted((SRC / package).rglob("*.py")):
        for name in _imports(f):
            parts = name.split(".")
            if parts[0] == "pixels2peaks" and len(parts) > 1 and parts[1] in FORBIDDEN[package]:
                bad.append(f"{f.relative_to(SRC)} imports {name}")
    assert not bad, bad
