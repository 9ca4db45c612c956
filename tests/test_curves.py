"""Learning curves from per-epoch records (rbfi.evaluation.curves)."""

from __future__ import annotations

import json

import pytest

from rbfi.evaluation.curves import learning_curves_png, load_metrics, robust_label, series
from tools.curves import main

RECORDS = [
    {"epoch": 1, "test_accuracy": 0.5, "train_eps": 0.0, "monitor_pgd20_0.3": 0.1},
    {"epoch": 2, "test_accuracy": 0.7, "train_eps": 0.15, "monitor_pgd20_0.3": 0.3},
    {"epoch": 3, "test_accuracy": 0.8, "train_eps": 0.3, "monitor_pgd20_0.3": 0.5},
]
CERTIFIED = [
    {"epoch": 1, "test_accuracy": 0.9, "test_certified_0.3": 0.2, "test_certified_0.1": 0.6},
    {"epoch": 2, "test_accuracy": 0.95, "test_certified_0.3": 0.4, "test_certified_0.1": 0.8},
]


def test_robust_keys_and_labels():
    assert robust_label("monitor_pgd20_0.3") == "PGD-20 at 0.3"
    assert robust_label("test_certified_0.1") == "certified at 0.1"
    assert robust_label("test_accuracy") is None and robust_label("train_eps") is None


def test_series_per_epoch_in_order_of_eps():
    assert series(RECORDS) == {
        "clean": ([1, 2, 3], [0.5, 0.7, 0.8]),
        "PGD-20 at 0.3": ([1, 2, 3], [0.1, 0.3, 0.5]),
    }
    out = series(CERTIFIED)
    assert list(out) == ["clean", "certified at 0.1", "certified at 0.3"]
    assert out["certified at 0.3"] == ([1, 2], [0.2, 0.4])
    # an epoch without the value is left out of that series only
    gap = [dict(RECORDS[0]), {k: v for k, v in RECORDS[1].items() if k != "monitor_pgd20_0.3"}]
    assert series(gap)["PGD-20 at 0.3"] == ([1], [0.1])
    assert series(gap)["clean"] == ([1, 2], [0.5, 0.7])


def test_png_of_several_runs_and_the_command(tmp_path):
    png = learning_curves_png({"madry": RECORDS, "ibp": CERTIFIED}, title="t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no runs"):
        learning_curves_png({})
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    assert load_metrics(run) == RECORDS
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        load_metrics(tmp_path)
    assert main([str(run), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert main([str(tmp_path), "--out", str(tmp_path / "d.png")]) == 2  # not a run: one line
    assert not (tmp_path / "d.png").exists()
