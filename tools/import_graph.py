"""The package's import graph between its parts, and the layering rule it must keep.

    python -m tools.import_graph            # edges part -> part, violations, circles
    python -m tools.import_graph --modules  # the same between single modules
    python -m tools.import_graph --root OLD  # another checkout (e.g. a worktree of an old commit)

A *part* is a direct child of ``rbfi`` (a subpackage or a module). ``LAYERS`` lists them from
the top (the command line) to the bottom (the kernels); ``UTILITIES`` may be imported from
anywhere and import no part but other utilities. The rule: every import between two parts
goes from a higher layer to a strictly lower one (or to a utility). Nothing imports the
package root ``rbfi``.
Exits 1 when the rule is broken or a circle exists. Imports are read from the source (``ast``),
so nothing of the package is run.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "rbfi"

# top to bottom; parts on one line are peers (they must not import each other)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("experiments",),
    ("sweeps",),
    ("training", "evaluation"),
    ("attacks", "bounds"),
    ("models",),
    ("nn",),
    ("ops",),
)
UTILITIES = ("io", "data", "options", "stats", "_version")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Modules of the package that module ``name`` imports (absolute and relative imports)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")
                keep = len(parts) - node.level + (1 if path.name == "__init__.py" else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:  # rbfi.a.b.func -> rbfi.a.b
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                out.add(candidate)
    return out


def part_of(module: str) -> str:
    """'rbfi.attacks.pgd' -> 'attacks'; the package root is ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def rank(part: str) -> int | None:
    for depth, layer in enumerate(LAYERS):
        if part in layer:
            return depth
    return None


def graph(modules: bool = False, root: Path = ROOT) -> dict[str, set[str]]:
    """Edges between parts (or single modules with ``modules=True``)."""
    known = module_files(root)
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        for target in imported_modules(name, path, known):
            if modules:
                edges[name].add(target)
            elif part_of(name) != part_of(target):
                edges[part_of(name) or PACKAGE].add(part_of(target) or PACKAGE)
    return dict(edges)


def violations(root: Path = ROOT) -> list[str]:
    """Every import between parts that breaks the layering rule."""
    known = module_files(root)
    found = []
    for name, path in known.items():
        source = part_of(name)
        for target in sorted(imported_modules(name, path, known)):
            dest = part_of(target)
            if dest == source:
                continue
            if dest == "":
                found.append(f"{name} imports the package root {PACKAGE}")
            elif source == "":
                continue  # the root may import any part
            elif dest in UTILITIES:
                continue
            elif source in UTILITIES:
                found.append(f"{name} (a utility) imports {target}")
            elif rank(source) is None or rank(dest) is None:
                found.append(f"{name} -> {target}: part not placed in a layer")
            elif rank(dest) <= rank(source):
                found.append(f"{name} -> {target}: imports upward or sideways")
    return found


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, seen, stack = [], set(), []

    def visit(node: str) -> None:
        if node in stack:
            found.append(stack[stack.index(node) :] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            visit(nxt)
        stack.pop()

    for node in sorted(edges):
        visit(node)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="edges between single modules")
    parser.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="checkout to read (default: this one), e.g. an older commit's worktree",
    )
    args = parser.parse_args(argv)
    if not (args.root / PACKAGE).is_dir():
        parser.error(f"{args.root} holds no {PACKAGE}/ package")
    edges = graph(args.modules, args.root)
    for source in sorted(edges):
        print(f"{source:24s} -> {', '.join(sorted(edges[source]))}")
    bad = violations(args.root)
    loops = circles(edges)
    for line in bad:
        print(f"violation: {line}")
    for loop in loops:
        print("circle: " + " -> ".join(loop))
    if not bad and not loops:
        print(f"ok: imports go downward through {len(LAYERS)} layers, no circle")
    return 1 if bad or loops else 0


if __name__ == "__main__":
    sys.exit(main())
