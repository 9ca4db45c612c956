"""The baselines item: its nets and recipes, and its verdicts on hand-worked binomial cases."""

from __future__ import annotations

import json

import rbfi.stats as stats
from rbfi.experiments.items import ITEMS
from rbfi.experiments.paper.baselines import ITEM, Target, target_of
from rbfi.experiments.paper.table1 import ITEM as TABLE1
from rbfi.experiments.profiles import PROFILES
from rbfi.models import ModelConfig
from rbfi.training import TrainConfig
from tools.baseline_runs import main, summarise_run, target


def test_nets_share_table1_jobs_and_follow_the_recipes():
    assert ITEMS["baselines"] is ITEM
    profile = PROFILES["standard"]
    nets = ITEM.nets(profile)
    table1 = {j.id for j in TABLE1.jobs(profile)}
    assert nets["RBFI"].id in table1 and nets["ReLU"].id in table1
    madry = TrainConfig.from_json(nets["ReLU (Madry PGD)"].payload["train"])
    assert (madry.adversarial, madry.adv_eps, madry.adv_eps_ramp) == ("madry", 0.3, 0.5)
    assert (madry.optimizer, madry.lr_schedule, madry.adv_steps) == ("adam", "cosine", 10)
    assert madry.epochs == profile.baseline_epochs and madry.train_limit is None
    trades = TrainConfig.from_json(nets["ReLU (TRADES)"].payload["train"])
    assert (trades.adversarial, trades.trades_beta) == ("trades", 6.0)
    ibp = TrainConfig.from_json(nets["ReLU (IBP)"].payload["train"])
    assert (ibp.certified_eps, ibp.certified_weight, ibp.certified_scale) == (0.2, 0.5, 1.0)
    assert ibp.lr_schedule == "step" and tuple(ibp.lr_decay_at) == (0.75, 0.9)
    # every net has one evaluation on the same images
    _, evals = ITEM.evals(profile)
    assert {e.payload["limit"] for e in evals.values()} == {profile.strong_limit} == {1000}
    # the targets (docs/baselines.md): Madry and TRADES trained for 0.3 have none, the IBP net
    # trained at eps_train 0.2 has IBP's, the normally and the certified-trained RBFI nets none
    targets = {label: target_of(job.payload["train"]) for label, job in nets.items()}
    assert targets == {
        "RBFI": None,
        "RBFI (certified training)": None,
        "ReLU": None,
        "ReLU (Madry PGD)": None,
        "ReLU (TRADES)": None,
        "ReLU (IBP)": Target("certified", 0.1, 0.90),
    }


def flags(k: int, n: int = 1000) -> list[bool]:
    return [True] * k + [False] * (n - k)


def entry(clean: int, worst: dict, certified: dict, healthy: bool = True) -> dict:
    n = 1000
    return {
        "n": n,
        "clean": stats.proportion(clean, n).to_json(),
        "worst": {e: stats.proportion(k, n).to_json() for e, k in worst.items()},
        "certified": {e: stats.proportion(k, n).to_json() for e, k in certified.items()},
        "healthy": healthy,
    }


def test_verdicts_on_hand_worked_cases():
    eps = {"0.1": 0, "0.3": 0}
    data = {
        "eps": [0.1, 0.3],
        "nets": {
            # Clopper-Pearson 95%: 900/1000 -> [87.9, 91.8] (above 85); 850/1000 -> [82.7,
            # 87.1] (contains 85); 800/1000 -> [77.4, 82.4] (below 90)
            "ReLU (Madry PGD)": entry(980, {"0.1": 900, "0.3": 100}, eps),
            "ReLU (TRADES)": entry(980, {"0.1": 850, "0.3": 100}, eps),
            "ReLU (IBP)": entry(950, {"0.1": 700, "0.3": 100}, {"0.1": 800, "0.3": 0}),
            "RBFI": entry(970, {"0.1": 900, "0.3": 130}, eps),
        },
    }
    low, high = stats.clopper_pearson(900, 1000)
    assert 0.878 < low < 0.880 and 0.917 < high < 0.919
    per_example = {name: {"worst": {}} for name in data["nets"]}
    for name, net in data["nets"].items():
        for key in ("0.1", "0.3"):
            per_example[name]["worst"][key] = flags(round(net["worst"][key]["value"] * 1000))
    # the targets as if Madry and TRADES had been trained for eps 0.1 (they have one then)
    targets = {
        "ReLU (Madry PGD)": Target("worst", 0.1, 0.85),
        "ReLU (TRADES)": Target("worst", 0.1, 0.85),
        "ReLU (IBP)": Target("certified", 0.1, 0.90),
        "RBFI": None,
    }
    claims = {c.text: c for c in ITEM.claims(data, per_example, [], targets)}
    madry = claims["target: ReLU (Madry PGD) reaches 85% worst case at eps 0.1"]
    assert madry.holds is True and madry.evidence == "ReLU (Madry PGD) 90.0 [88.0-91.8] (n = 1000)"
    assert madry.reason == "n = 1000: 95% CI 88.0-91.8 above 85"  # the reason is the reason
    assert claims["target: ReLU (TRADES) reaches 85% worst case at eps 0.1"].holds is None
    ibp = claims["target: ReLU (IBP) reaches 90% certified accuracy at eps 0.1"]
    assert ibp.holds is False and "below 90" in ibp.reason
    # paired: RBFI right on 130 images at 0.3, Madry on the first 100 of them: 30 vs 0
    # discordant, McNemar p = 2 / 2^30
    beats = claims["RBFI trained normally beats ReLU (Madry PGD) in worst-case accuracy at eps 0.3"]
    assert beats.holds is True and "McNemar p = 1.9e-09" in beats.reason
    assert "McNemar" not in beats.evidence and "(n = 1000)" in beats.evidence
    # 0.1: the same 900 images right: no discordant pairs, undecided
    tie = claims["RBFI trained normally beats ReLU (Madry PGD) in worst-case accuracy at eps 0.1"]
    assert tie.holds is None
    # without a target (trained for 0.3), no target claim
    no_targets = {c.text for c in ITEM.claims(data, per_example, [], {"RBFI": None})}
    assert not any(text.startswith("target:") for text in no_targets)
    # an under-trained premise makes a decided verdict undecided and names the net
    doubts = [stats.Doubt("ReLU (Madry PGD)", "under-trained", "still rising")]
    claims = {c.text: c for c in ITEM.claims(data, per_example, doubts, targets)}
    madry = claims["target: ReLU (Madry PGD) reaches 85% worst case at eps 0.1"]
    assert madry.holds is None and madry.reason.startswith(
        "rests on ReLU (Madry PGD) under-trained"
    )
    assert "in doubt: ReLU (Madry PGD) under-trained (still rising)" in madry.details


def write_run(root, name, pgd_flags, apgd_flags, certified, clean_right):
    """A hand-made run directory: 3 epochs of records, PGD on len(pgd_flags) images and APGD on
    len(apgd_flags)."""
    run = root / name
    (run / "attack-pgd").mkdir(parents=True)
    (run / "attack-apgd").mkdir()
    training = TrainConfig(model=ModelConfig("relu", (16, 10)), adversarial="madry").to_json()
    (run / "checkpoint.json").write_text(json.dumps({"training": training}))
    records = [{"epoch": e, "test_accuracy": 0.9, "train_seconds": 60.0} for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    def bits(flags):
        return "".join("1" if f else "0" for f in flags)

    n1, n2 = len(pgd_flags), len(apgd_flags)
    labels = [i % 10 for i in range(n1)]
    predictions = [y if right else (y + 1) % 10 for y, right in zip(labels, clean_right)]
    pgd = {
        "n_examples": n1,
        "labels": labels,
        "clean_predictions": predictions,
        "settings": {"options": {"pgd_steps": 100, "pgd_restarts": 1}},
        "results": {"pgd-ce": {}, "pgd-margin": {}},
        "worst_case": {e: {"correct": bits(pgd_flags)} for e in ("0.1", "0.2", "0.3")},
        "certified": {e: {"certified": bits(certified)} for e in ("0.1", "0.2", "0.3")},
    }
    apgd = {
        "n_examples": n2,
        "labels": labels[:n2],
        "worst_case": {e: {"correct": bits(apgd_flags)} for e in ("0.1", "0.2", "0.3")},
    }
    (run / "attack-pgd" / "robustness.json").write_text(json.dumps(pgd))
    (run / "attack-apgd" / "robustness.json").write_text(json.dumps(apgd))
    return run


def test_hand_run_summary_takes_the_worst_case_per_example(tmp_path):
    # 10 images under PGD (7 survive: the first 7), APGD on the first 4 breaks image 1 and
    # image 3; image 0 survives both; on those 4 images PGD leaves 4, APGD 2, together 2
    run = write_run(
        tmp_path,
        "madry",
        pgd_flags=[True] * 7 + [False] * 3,
        apgd_flags=[True, False, True, False],
        certified=[True, True] + [False] * 8,
        clean_right=[True] * 9 + [False],
    )
    out = summarise_run(run)
    assert out["clean"]["value"] == 0.9 and out["clean"]["n"] == 10
    assert out["pgd"]["0.1"]["value"] == 0.7 and out["pgd"]["0.1"]["n"] == 10
    assert out["worst"]["0.3"]["value"] == 0.5 and out["worst"]["0.3"]["n"] == 4
    assert out["pgd_on_worst_images"]["0.3"]["value"] == 1.0
    assert out["certified"]["0.2"]["value"] == 0.2
    low, high = stats.clopper_pearson(7, 10)
    assert (out["pgd"]["0.1"]["low"], out["pgd"]["0.1"]["high"]) == (low, high)
    assert out["train_seconds"] == 180.0 and out["health"]["status"] == "converged"
    assert main([f"Madry={run}", "--out", str(tmp_path / "out")]) == 0
    assert main([f"None={tmp_path / 'nowhere'}", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()  # refused before anything is written
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "| Madry | 10 / 4 | 90.0 [55.5-99.7] | yes | 70.0 [34.8-93.3]" in text
    assert "100 steps x 1 restart(s)" in text and "first 4" in text


def test_targets_are_decided_only_when_the_interval_excludes_them():
    """Issue 15's targets on hand-worked binomial cases: 870 / 1000 has the exact 95% interval
    84.8-89.0 (contains 85: undecided), 900 / 1000 has 87.9-91.8 (above: holds), and 780 /
    1000 certified has 75.3-82.5 (below 90: does not hold); a failed net stays undecided."""

    def net(recipe: dict, key: str, k: int, status: str = "converged") -> dict:
        return {
            "recipe": recipe,
            key: {"0.1": stats.proportion(k, 1000).to_json()},
            "health": {"status": status, "reasons": []},
        }

    madry = {"adversarial": "madry", "adv_eps": 0.1}
    claim, verdict = target(net(madry, "worst", 870))
    assert claim == "worst 0.1 >= 85%" and verdict.status == "undecided"
    assert "84.8-89.0 contains 85" in verdict.reason
    assert target(net(madry, "worst", 900))[1].status == "holds"
    ibp = {"certified_eps": 0.15}
    claim, verdict = target(net(ibp, "certified", 780))
    assert claim == "certified 0.1 >= 90%" and verdict.status == "does not hold"
    failed = target(net(madry, "worst", 900, status="failed"))[1]
    assert failed.status == "undecided" and failed.reason.startswith("rests on the net failed")
    assert target(net({"adversarial": "none"}, "worst", 900)) is None
    assert target(net({"adversarial": "madry", "adv_eps": 0.3}, "worst", 900)) is None
    assert target(net({"certified_eps": 0.4}, "certified", 900)) is None
