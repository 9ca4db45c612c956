"""The package keeps its shape: imports go downward through the layers of
``tools/import_graph.py`` (no circles), and no module grows past 500 lines."""

from pathlib import Path

from tools import import_graph

ROOT = Path(__file__).resolve().parents[1]


def test_imports_go_downward_and_form_no_circle():
    assert import_graph.violations() == []
    assert import_graph.circles(import_graph.graph()) == []
    assert import_graph.circles(import_graph.graph(modules=True)) == []


def test_every_part_is_placed_in_a_layer():
    parts = {import_graph.part_of(m) for m in import_graph.module_files()} - {""}
    placed = {p for layer in import_graph.LAYERS for p in layer} | set(import_graph.UTILITIES)
    assert parts <= placed, parts - placed


def test_the_checker_catches_an_upward_import(tmp_path):
    package = tmp_path / "rbfi"
    for part in ("ops", "nn"):
        (package / part).mkdir(parents=True)
        (package / part / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "ops" / "bad.py").write_text("from rbfi.nn import thing\n")
    (package / "nn" / "good.py").write_text("from rbfi.ops import bad\n")
    found = import_graph.violations(tmp_path)
    assert found == ["rbfi.ops.bad -> rbfi.nn: imports upward or sideways"]
    assert import_graph.circles(import_graph.graph(root=tmp_path)) == [["nn", "ops", "nn"]]
    # the command line reads another checkout with --root and exits 1 on what it finds
    assert import_graph.main(["--root", str(tmp_path)]) == 1
    assert import_graph.main([]) == 0


def test_modules_stay_under_500_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "rbfi").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 500
    }
    assert long == {}
