"""The robustness evaluation: suites, per-example outcomes, worst case, masking checks,
reports, and the ``rbfi attack`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from rbfi import build_model, save_model
from rbfi.attacks.suites import SuiteOptions, build_suite
from rbfi.evaluation import (
    ROBUSTNESS_SCHEMA,
    EvalConfig,
    evaluate_robustness,
    to_markdown,
    worst_case,
    write_results,
)
from tests.test_attacks import _one_thread, tiny_rbfi, tiny_relu, trained_relu  # noqa: F401

TINY = SuiteOptions(
    ifgsm_steps=3,
    paper_pgd_steps=4,
    paper_pgd_restarts=2,
    pgd_steps=4,
    pgd_restarts=2,
    square_queries=10,
    autoattack="apgd",
    transfer_steps=3,
)


def own_labels(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Labels = the model's predictions: every example is correct without attack."""
    with torch.no_grad():
        return model(x).argmax(dim=1)


def test_paper_suite_outcomes_and_worst_case():
    model = tiny_rbfi(784)
    x = torch.rand(30, 784)
    y = own_labels(model, x)
    y[:3] = (y[:3] + 1) % 10  # three examples wrong without attack
    config = EvalConfig(
        suite="paper", eps=(0.3, 0.0, 0.1), batch_size=16, check_subset=5, options=TINY
    )
    results = evaluate_robustness(model, x, y, config, progress=False, log=lambda m: None)
    json.dumps(results)  # serialisable as is
    assert results["eps"] == [0.0, 0.1, 0.3]
    names = [a["name"] for a in results["attacks"]]
    assert names == ["fgsm", "ifgsm", "noise", "pgd-paper", "pgd-paper-legacy"]
    assert results["clean_accuracy"] == pytest.approx(27 / 30)
    robust = torch.ones(30, dtype=torch.bool)
    for key in ("0", "0.1", "0.3"):
        same_eps = torch.ones(30, dtype=torch.bool)
        for name in names:
            outcome = results["results"][name][key]
            bits = torch.tensor([c == "1" for c in outcome["correct"]])
            assert len(outcome["correct"]) == 30 and not bits[:3].any()
            assert outcome["accuracy"] == pytest.approx(bits.float().mean().item())
            if key == "0":
                assert outcome["accuracy"] == results["clean_accuracy"]
            same_eps &= bits
        robust &= same_eps
        worst = results["worst_case"][key]
        assert worst["correct"] == "".join("1" if b else "0" for b in robust.tolist())
        assert worst["accuracy"] <= min(results["results"][n][key]["accuracy"] for n in names)
    accs = [results["worst_case"][k]["accuracy"] for k in ("0", "0.1", "0.3")]
    assert accs == sorted(accs, reverse=True)
    assert results["checks"]["step_doubling"]["attack"] == "pgd-paper"
    assert results["results"]["pgd-paper"]["0.1"]["attacked"] == 27
    assert results["settings"]["options"]["paper_pgd_steps"] == 4
    assert results["versions"]["torch"] == torch.__version__


def test_strong_suite_contents_depend_on_the_model():
    rbfi_specs, skipped = build_suite("strong", tiny_rbfi(784), TINY, transfer_source=tiny_relu())
    names = {s.name for s in rbfi_specs}
    assert {"pgd-paper-bpda", "pgd-bpda-margin", "fgsm-bpda-ce", "transfer", "pgd-margin"} <= names
    assert {"square", "autoattack", "autoattack-bpda"} <= names
    relu_specs, skipped = build_suite("strong", tiny_relu(784), TINY)
    names = {s.name for s in relu_specs}
    assert not any("bpda" in n for n in names) and "fgsm-ce" not in names
    assert "transfer" not in names
    reasons = " ".join(s["reason"] for s in skipped)
    assert "no RBFI layers" in reasons and "--transfer-source" in reasons
    with pytest.raises(ValueError):
        build_suite("weak", tiny_relu(784))


def test_strong_suite_runs_end_to_end_on_a_tiny_rbfi_net(tmp_path):
    model, source = tiny_rbfi(784), tiny_relu(784)
    x = torch.rand(12, 784)
    y = own_labels(model, x)
    config = EvalConfig(suite="strong", eps=(0.0, 0.2), check_subset=4, options=TINY)
    results = evaluate_robustness(
        model, x, y, config, transfer_source=source, progress=False, log=lambda m: None
    )
    assert "transfer" in results["results"] and "pgd-bpda-ce" in results["results"]
    for per_eps in results["results"].values():
        assert set(per_eps) == {"0", "0.2"}
    assert "zero_gradient_fraction" in results["checks"]
    assert results["cost_estimate"]["example_passes"]["backward_pseudo"] > 0
    paths = write_results(results, tmp_path / "out")
    assert [p.name for p in paths] == ["robustness.png", "robustness.md", "robustness.json"]
    assert paths[0].read_bytes().startswith(b"\x89PNG")


def test_only_the_chosen_attacks_run_and_unknown_names_are_refused():
    model = tiny_rbfi(784)
    x = torch.rand(6, 784)
    y = own_labels(model, x)
    config = EvalConfig(suite="paper", eps=(0.1,), attacks=("fgsm", "noise"), options=TINY)
    results = evaluate_robustness(model, x, y, config, progress=False, log=lambda m: None)
    assert list(results["results"]) == ["fgsm", "noise"]
    config = EvalConfig(suite="paper", eps=(0.1,), attacks=("fgsm", "deepfool"))
    with pytest.raises(ValueError, match="deepfool"):
        evaluate_robustness(model, x, y, config, progress=False, log=lambda m: None)
    for bad in ({"eps": (1.5,)}, {"suite": "weak"}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            EvalConfig(**bad)


def test_worst_case_counts_examples_broken_at_a_smaller_eps():
    clean = torch.tensor([True, True, True, False])
    outcomes = {
        "a": {"0.1": {"correct": "0110"}, "0.2": {"correct": "1110"}},  # 0 broken at 0.1 only
        "b": {"0.1": {"correct": "1110"}, "0.2": {"correct": "1010"}},
    }
    worst = worst_case(outcomes, clean, (0.1, 0.2))
    assert worst["0.1"]["correct"] == "0110"
    assert worst["0.2"]["correct"] == "0010"
    assert worst["0.2"]["accuracy"] == 0.25 and worst["0.2"]["accuracy_same_eps"] == 0.5


class Quantized(nn.Module):
    """Rounds its input to 4 grey levels first: the input gradient is zero everywhere (the
    textbook case of gradient masking)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 3) / 3)


def test_masking_checks_flag_a_gradient_masking_model():
    relu, x, y = trained_relu()
    x, y = x[:100], y[:100]
    masked = Quantized(relu)
    config = EvalConfig(
        suite="paper", eps=(0.0, 0.3, 0.5), attacks=("fgsm", "ifgsm", "noise"), options=TINY
    )
    results = evaluate_robustness(
        masked, x, y, config, transfer_source=relu, progress=False, log=lambda m: None
    )
    warnings = "\n".join(results["warnings"])
    assert "fgsm: 100.0% of the attacked examples have an exactly zero input gradient" in warnings
    assert "black-box noise beats the gradient attacks together" in warnings
    assert "constant 0.5 image" in warnings  # the worst case is provably too optimistic
    assert results["checks"]["relu_reference"]["transfer_source"]["pgd_ce_20_steps_accuracy"] < 0.02
    markdown = to_markdown(results)
    assert "| **worst case (upper bound)** |" in markdown and "**warning**" in markdown
    assert "certified (lower bound)" not in markdown and "no interval rule" in markdown


def test_masking_checks_pass_on_a_relu_net():
    relu, x, y = trained_relu()
    x, y = x[:100], y[:100]
    options = SuiteOptions(paper_pgd_steps=30, paper_pgd_restarts=1)
    config = EvalConfig(suite="paper", eps=(0.0, 0.3, 0.5), check_subset=30, options=options)
    results = evaluate_robustness(relu, x, y, config, progress=False, log=lambda m: None)
    assert results["warnings"] == []
    assert results["worst_case"]["0.5"]["accuracy"] == 0.0
    assert results["checks"]["relu_reference"]["evaluated_model"]["worst_case_accuracy"] == 0.0
    doubling = results["checks"]["step_doubling"]["accuracy_on_subset"]
    assert set(doubling) == {"0.3", "0.5"}


def test_results_are_never_overwritten_silently(tmp_path):
    model = tiny_relu(784)
    x = torch.rand(5, 784)
    config = EvalConfig(suite="paper", eps=(0.0, 0.1), attacks=("fgsm",), options=TINY)
    results = evaluate_robustness(
        model, x, own_labels(model, x), config, progress=False, log=lambda m: None
    )
    out = tmp_path / "res"
    write_results(results, out)
    before = (out / "robustness.json").read_bytes()
    with pytest.raises(ValueError, match="--overwrite"):
        write_results(results, out)
    assert (out / "robustness.json").read_bytes() == before
    write_results(results, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "robustness.json",
        "robustness.md",
        "robustness.png",
    ]  # no temp files left behind


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_rbfi_attack_end_to_end_through_main(tmp_path, capsys):
    """`rbfi attack` through the CLI's main on a tiny RBFI net: the files, the table with the
    worst case and the certified floor, a robustness.json that fits its schema, and refusals
    that change nothing."""
    from rbfi.cli import main

    torch.manual_seed(0)
    run = tmp_path / "run"
    save_model(run, build_model("rbfi", "16,10"), epoch=1)
    out = tmp_path / "results"
    argv = ["attack", str(run), "--suite", "strong", "--eps", "0,0.05,0.2", "--limit", "20"]
    argv += ["--out", str(out), "--paper-pgd-steps", "3", "--paper-pgd-restarts", "1"]
    argv += ["--ifgsm-steps", "2", "--pgd-steps", "3", "--pgd-restarts", "1"]
    argv += ["--square-queries", "10", "--autoattack", "apgd", "--check-subset", "0"]
    argv += ["--no-progress", "--threads", "1", "--pixel-scale", "256"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| **worst case (upper bound)** |" in printed
    assert "| **certified (lower bound)** |" in printed and "eps 0.2" in printed
    saved = json.loads((out / "robustness.json").read_text())
    ROBUSTNESS_SCHEMA.check(saved)
    assert saved["n_examples"] == 20 and saved["model"]["checkpoint"] == str(run)
    assert {"pgd-bpda-margin", "square", "autoattack-bpda"} <= set(saved["results"])
    # the certified floor against tools/independent_certify.py (NumPy, float64, from the
    # formulas, reading the checkpoint files and the data wheel itself: k / 256 pixels)
    from safetensors.numpy import load_file

    from tools.independent_certify import load_test_set
    from tools.independent_certify import margins as numpy_margins

    index = json.loads((run / "checkpoint.json").read_text())
    weights = load_file(str(run / index["weights"]["file"]))
    x_np, y_np = (a[:20] for a in load_test_set(None, 256))
    assert saved["labels"] == y_np.tolist()
    for key in ("0", "0.05", "0.2"):
        theirs = numpy_margins(index["model"], weights, x_np, y_np, float(key))
        row = saved["certified"][key]
        flags = [c == "1" for c in row["certified"]]
        assert all(f == (m > 0) for f, m in zip(flags, theirs) if abs(m) > 1e-5)
        assert row["accuracy"] == pytest.approx(sum(flags) / 20)
        for q, value in row["margin_quantiles"].items():
            assert value == pytest.approx(np.quantile(theirs, float(q)), abs=1e-5)
    assert sorted(p.name for p in out.iterdir()) == [
        "robustness.json",
        "robustness.md",
        "robustness.png",
    ]
    before = _snapshot(out)
    assert main(argv) == 2  # results already there
    assert "already holds results" in capsys.readouterr().err
    assert main(argv + ["--overwrite", "--attacks", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rbfi: error: unknown attack(s) nope") and err.count("\n") == 1
    assert main(argv + ["--estimate-only"]) == 0
    assert main(["attack", str(run), "--eps", "2", "--out", str(out)]) == 2
    assert "--eps: expected comma-separated numbers in [0, 1]" in capsys.readouterr().err
    assert main(["attack", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert _snapshot(out) == before and not (tmp_path / "o").exists()


def test_robustness_schema_refuses_what_it_should():
    from rbfi.io.schema import SchemaError

    model = tiny_relu(784)
    x = torch.rand(6, 784)
    config = EvalConfig(suite="paper", eps=(0.0, 0.1), attacks=("fgsm",), options=TINY)
    results = evaluate_robustness(
        model, x, own_labels(model, x), config, progress=False, log=lambda m: None
    )
    good = json.loads(json.dumps(results))
    ROBUSTNESS_SCHEMA.check(good)
    for path, value in (
        (("clean_accuracy",), 1.5),
        (("results", "fgsm", "0.1", "correct"), "10x"),
        (("worst_case", "0.1", "accuracy"), float("nan")),
        (("attacks", 0, "family"), "weird"),
        (("format_version",), 1),
    ):
        bad = json.loads(json.dumps(results))
        target = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(SchemaError):
            ROBUSTNESS_SCHEMA.check(bad)


def test_an_empty_set_of_images_is_refused():
    """An accuracy over 0 images is undefined: both evaluations refuse an empty set with one
    line instead of writing nan (or 0.0) as an accuracy."""
    from rbfi.evaluation.certification import certify_grid

    model = tiny_rbfi(784)
    x, y = torch.rand(0, 784), torch.zeros(0, dtype=torch.long)
    config = EvalConfig(suite="paper", eps=(0.1,), attacks=("fgsm",), options=TINY)
    for run in (
        lambda: evaluate_robustness(model, x, y, config, progress=False, log=lambda m: None),
        lambda: certify_grid(model, x, y, (0.1,)),
    ):
        with pytest.raises(ValueError, match="no test images") as exc:
            run()
        assert "\n" not in str(exc.value)


def test_certify_and_attack_results_share_their_header_and_certified_rows():
    """certify.json and robustness.json come from one implementation: the same header values
    and the same certified flags/accuracy for the same model and images."""
    from rbfi.evaluation.certification import CERTIFY_SCHEMA, certify_grid

    model = tiny_rbfi(784)
    x = torch.rand(10, 784)
    y = own_labels(model, x)
    y[:2] = (y[:2] + 1) % 10
    config = EvalConfig(suite="paper", eps=(0.0, 0.01), attacks=("noise",), options=TINY)
    attack = evaluate_robustness(model, x, y, config, progress=False, log=lambda m: None)
    cert = certify_grid(model, x, y, config.eps)
    CERTIFY_SCHEMA.check(json.loads(json.dumps(cert)))
    ROBUSTNESS_SCHEMA.check(json.loads(json.dumps(attack)))
    shared = ("n_examples", "labels", "clean_predictions", "clean_accuracy", "model", "device")
    assert {k: attack[k] for k in shared} == {k: cert[k] for k in shared}
    assert attack["clean_accuracy"] == pytest.approx(0.8)
    for key in ("0", "0.01"):
        a, c = attack["certified"][key], cert["certified"][key]
        assert a["certified"] == c["certified"] and a["accuracy"] == c["accuracy"]
        assert "margins" in c and "margins" not in a  # every margin only in certify.json
        assert a["certified"][:2] == "00"  # wrong without attack: never certified
    assert attack["certified"]["0"]["accuracy"] == pytest.approx(0.8)  # eps 0: the clean ones


def test_one_reader_of_per_example_flags():
    """row_flags: a certified row's flags ("certified"; "correct" before format 3), an attack's
    ("correct"); a row without flags is a one-line ValueError naming its keys."""
    from rbfi.evaluation.results import row_flags

    assert row_flags({"accuracy": 0.5, "certified": "10"}) == [True, False]
    assert row_flags({"accuracy": 0.5, "correct": "01"}) == [False, True]
    with pytest.raises(ValueError, match="without per-example flags \\(keys: accuracy\\)"):
        row_flags({"accuracy": 0.5})


def test_soundness_check_reads_certified_flags_of_both_formats():
    """Format 3 stores certified flags under "certified"; files of format 2 under "correct"."""
    from rbfi.evaluation import soundness_violations

    outcomes = {"fgsm": {"0.1": {"correct": "0110"}}}  # examples 0 and 3 broken at 0.1
    for name in ("certified", "correct"):
        found = soundness_violations(outcomes, {"0.1": {name: "1100"}, "0.3": {name: "0001"}})
        assert [(v["certified_at"], v["examples"]) for v in found] == [("0.1", [0]), ("0.3", [3])]


@pytest.mark.parametrize(
    "eps, layout", [((0.1,), "one-eps"), ((0.0, 0.1), "one-eps"), ((0.0, 0.05, 0.1), "curves")]
)
def test_one_eps_gets_a_sorted_chart_instead_of_curves(tmp_path, eps, layout):
    """A curve needs two points: with a single eps > 0 (eps 0 aside) robustness.png is the
    sorted per-attack chart with the worst case and the certified floor marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rbfi.evaluation import report

    model = tiny_rbfi(784)
    x = torch.rand(8, 784)
    config = EvalConfig(suite="paper", eps=eps, attacks=("fgsm", "noise"), options=TINY)
    results = evaluate_robustness(
        model, x, own_labels(model, x), config, progress=False, log=lambda m: None
    )
    assert report.plot(results, tmp_path / "figure.png") == layout
    assert (tmp_path / "figure.png").read_bytes().startswith(b"\x89PNG")
    if layout != "one-eps":
        return
    drawn = {}
    savefig = plt.Figure.savefig

    def spy(fig, *args, **kwargs):  # what the chart holds, read back from its axes
        ax = fig.axes[0]
        drawn["rows"] = [t.get_text().split()[0] for t in ax.get_yticklabels()]
        drawn["legend"] = [t.get_text() for t in fig.legends[0].get_texts()]
        drawn["title"] = ax.get_title()
        return savefig(fig, *args, **kwargs)

    plt.Figure.savefig = spy
    try:
        paths = write_results(results, tmp_path / "out")
    finally:
        plt.Figure.savefig = savefig
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    accuracy = {name: results["results"][name]["0.1"]["accuracy"] for name in ("fgsm", "noise")}
    assert sorted(drawn["rows"]) == ["fgsm", "noise"]
    shown = [accuracy[name] for name in drawn["rows"]]  # rows from the bottom up
    assert shown == sorted(shown, reverse=True)  # the strongest attack on top
    worst = 100 * results["worst_case"]["0.1"]["accuracy"]
    floor = 100 * results["certified"]["0.1"]["accuracy"]
    assert f"worst case (attacks) {worst:.1f}" in drawn["legend"]
    assert f"certified (IBP) {floor:.1f}" in drawn["legend"]
    assert "eps 0.1" in drawn["title"] and "n = 8 images" in drawn["title"]
