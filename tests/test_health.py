"""Training health on synthetic metric histories."""

import json

import pytest

from rbfi.training import health
from rbfi.training.health import CONVERGED, FAILED, UNDER_TRAINED, UNKNOWN, assess, run_health


def history(*accuracies):
    return [{"epoch": e + 1, "test_accuracy": a} for e, a in enumerate(accuracies)]


def settings(arch="relu", layers=(512, 512, 512, 10), **kw):
    return {"model": {"arch": arch, "layers": list(layers)}, "adversarial": "none", **kw}


def test_flat_history_above_the_floor_converged():
    h = assess(history(0.95, 0.975, 0.980, 0.981, 0.981, 0.982), settings())
    assert h.status == CONVERGED and h.trained and h.reasons == () and h.problem("ReLU") == ""
    assert h.gain == pytest.approx(0.002)  # 0.980 -> 0.982 over the last 3 epochs


def test_still_rising_is_under_trained():
    # +0.9 points over the last 3 epochs (> 0.3), although above the ReLU floor of 97
    h = assess(history(0.94, 0.967, 0.969, 0.969, 0.976), settings())
    assert h.status == UNDER_TRAINED and h.gain == pytest.approx(0.009)
    assert "still rising: +0.9 points over the last 3 epoch(s)" in h.reasons[0]
    # exactly the tolerance is not "more than" it
    assert assess(history(0.97, 0.975, 0.976, 0.977, 0.978), settings()).status == CONVERGED


def test_short_runs_use_the_epochs_they_have():
    h = assess(history(0.874, 0.920, 0.928), settings("rbfi", (256, 256, 256, 10)))
    assert h.status == UNDER_TRAINED and h.gain == pytest.approx(0.054)
    assert "over the last 2 epoch(s)" in h.reasons[0]
    assert assess(history(0.9), settings()).status == UNKNOWN
    assert assess([], settings()).status == UNKNOWN


def test_floor_of_the_paper_nets_only():
    flat_low = history(0.780, 0.780, 0.780, 0.780)
    h = assess(flat_low, settings("sigmoid"))
    assert h.status == UNDER_TRAINED and h.floor == 0.95
    assert h.problem("Sigmoid seed 0") == (
        "Sigmoid seed 0 under-trained: clean 78.0 below the floor 95 for sigmoid 512^3 nets"
    )
    # no floor for other widths, depths, regimes
    for other in (
        settings("sigmoid", (256, 256, 256, 10)),
        settings("sigmoid", (512,) * 5 + (10,)),
        settings("sigmoid", adversarial="madry"),
        settings("sigmoid", reg_lambda=1e-4),
        settings("sigmoid", certified_eps=0.1),
        settings("rbfi", pseudogradient=False),
        settings("rbf"),
    ):
        assert health.floor_for(other) is None and assess(flat_low, other).status == CONVERGED
    assert health.floor_for(settings("rbfi")) == 0.95 and health.floor_for(settings()) == 0.97


def test_stuck_at_chance_failed():
    h = assess(history(0.117, 0.117, 0.117), settings(adversarial="madry"))
    assert h.status == FAILED and not h.trained and "near chance" in h.reasons[0]


def test_written_at_the_end_and_read_back(tmp_path):
    records = history(0.90, 0.95, 0.96, 0.97, 0.975)
    (tmp_path / "checkpoint.json").write_text(json.dumps({"metrics": [], "training": settings()}))
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    computed = run_health(tmp_path)  # no health.json: from metrics.jsonl
    assert computed == assess(records, settings()) and computed.status == UNDER_TRAINED
    stored = health.write_health(tmp_path, records, settings())
    assert json.loads((tmp_path / "health.json").read_text())["status"] == UNDER_TRAINED
    assert run_health(tmp_path) == stored
    # a run extended after health.json was written is assessed again
    longer = records + history(0.975, 0.975, 0.976)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in longer))
    assert run_health(tmp_path).epochs == 8 and run_health(tmp_path).status == CONVERGED


def test_training_writes_its_health(idx_dir, tmp_path):
    from rbfi.models import ModelConfig
    from rbfi.training import TrainConfig, train

    model = ModelConfig(arch="relu", layers=(8, 10))
    config = TrainConfig(model=model, epochs=2, batch_size=10, data_dir=str(idx_dir))
    lines = []
    train(config, tmp_path, progress=False, log=lines.append)
    stored = json.loads((tmp_path / "health.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert stored == assess(records, config.to_json()).to_json() and stored["epochs"] == 2
    assert run_health(tmp_path).status == stored["status"]
    assert (stored["status"] == CONVERGED) != any(line.startswith("health:") for line in lines)


def test_robust_collapse_fails_a_net_whose_clean_accuracy_looks_fine():
    """The IBP collapse seen on a ReLU net: certified accuracy at 0.1 rose to 71% at epoch 4,
    then fell to 9.8% while the clean accuracy stayed near 91%: failed, not converged."""
    clean = [0.90, 0.91, 0.915, 0.916, 0.916, 0.916]
    certified = [0.50, 0.65, 0.70, 0.71, 0.30, 0.098]
    metrics = [{"test_accuracy": a, "test_certified_0.1": c} for a, c in zip(clean, certified)]
    result = assess(metrics, {"model": {"arch": "relu", "layers": [512, 512, 512, 10]}})
    assert result.status == FAILED and not result.trained
    assert "peaked at 71.0 (epoch 4) and ended at 9.8 (epoch 6)" in result.reasons[0]
    assert "robust training collapsed" in result.short()


def test_robust_accuracy_that_dips_less_than_20_points_is_no_collapse():
    """A drop of exactly 20 points is not more than 20; a net whose PGD accuracy only
    flattens keeps its clean-accuracy verdict."""
    madry = {"model": {"arch": "relu", "layers": [512, 512, 512, 10]}, "adversarial": "madry"}
    metrics = [{"test_accuracy": 0.912, "monitor_pgd20_0.3": p} for p in [0.10, 0.50, 0.30, 0.30]]
    result = assess(metrics, madry)
    assert result.status == CONVERGED, result
    metrics[-1]["monitor_pgd20_0.3"] = 0.29
    assert assess(metrics, madry).status == FAILED


def test_only_the_eps_a_net_was_trained_for_can_collapse():
    """The conv study's net certified-trained for 0.15 records certified accuracy at 0.3 too,
    which its eps ramp destroys (30.6 at epoch 3, 6.6 at the end) while its accuracy at 0.1
    holds: converged. The same drop at 0.1, or on a net trained for 0.3, is a collapse."""
    conv = {"model": {"arch": "rbfi", "layers": ["c16k5s2", 512, 10]}, "certified_eps": 0.15}
    at_03 = [0.306, 0.25, 0.10, 0.066]
    metrics = [
        {"test_accuracy": 0.97, "test_certified_0.1": c1, "test_certified_0.3": c3}
        for c1, c3 in zip([0.90, 0.92, 0.93, 0.936], at_03)
    ]
    assert assess(metrics, conv).status == CONVERGED
    assert assess(metrics, {**conv, "certified_eps": 0.35}).status == FAILED
    metrics[-1]["test_certified_0.1"] = 0.70
    assert "test_certified_0.1 peaked at 93.0" in assess(metrics, conv).reasons[0]
    madry = {"model": {"arch": "relu", "layers": [512, 10]}, "adversarial": "madry", "adv_eps": 0.1}
    pgd = [{"test_accuracy": 0.97, "monitor_pgd20_0.3": p} for p in (0.5, 0.1)]
    assert assess(pgd, madry).status == CONVERGED
    assert assess(pgd, {**madry, "adv_eps": 0.3}).status == FAILED
    linf = {"model": {"arch": "linf-dist", "layers": [512, 10]}, "linf_eps": 0.45}
    assert assess(pgd, linf).status == FAILED  # its 0.3 is within what it trains for
    assert assess(pgd, {**linf, "linf_eps": 0.2}).status == CONVERGED


def test_a_table_row_names_the_status_of_a_net_that_did_not_train():
    """experiments.paper.measure.labelled: a converged net keeps its name; a net stuck at chance
    is '(failed)'; runs of mixed health list each bad status once."""
    from rbfi.experiments.paper.measure import labelled

    class Runs:  # the Results interface labelled reads: health(job)
        def __init__(self, histories):
            self.histories = histories

        def health(self, job):
            return assess(self.histories[job], settings())

    runs = Runs(
        {
            "good": history(0.95, 0.975, 0.980, 0.981, 0.981, 0.982),
            "chance": history(0.113, 0.112, 0.113, 0.113),
            "rising": history(0.94, 0.967, 0.969, 0.969, 0.976),
        }
    )
    assert labelled(runs, "ReLU", "good") == "ReLU"
    assert labelled(runs, "ReLU(Madry PGD)", "chance") == "ReLU(Madry PGD) (failed)"
    mixed = labelled(runs, "ReLU", ["good", "rising", "chance", "rising"])
    assert mixed == "ReLU (failed/under-trained)"


def test_reproduction_reads_a_jobs_health_from_its_health_json(tmp_path):
    """Results.health is run_health: the job's health.json when it covers every epoch (here a
    stored verdict that differs from what the records alone give, so the test sees which one
    was read), else assessed from its records (a job made before health.json existed)."""
    from rbfi.experiments.paper.common import net
    from rbfi.experiments.profiles import SMOKE
    from rbfi.experiments.spec import Results

    job = net(SMOKE, "relu", 0)
    directory = job.directory(tmp_path)
    directory.mkdir(parents=True)
    records = history(0.95, 0.975, 0.980, 0.981, 0.981, 0.982)
    index = {"metrics": records, "training": settings()}
    (directory / "checkpoint.json").write_text(json.dumps(index))
    computed = assess(records, settings())
    assert computed.status == CONVERGED and Results(tmp_path).health(job) == computed
    stored = health.Health(FAILED, ("stored verdict",), epochs=len(records))
    (directory / "health.json").write_text(json.dumps(stored.to_json()))
    assert Results(tmp_path).health(job) == stored
    (directory / "health.json").write_text(json.dumps({**stored.to_json(), "epochs": 3}))
    assert Results(tmp_path).health(job).status == CONVERGED  # stale: assessed again
