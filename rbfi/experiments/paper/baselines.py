"""Baselines (docs/baselines.md): RBFI trained normally and certified-trained against ReLU nets
trained normally, with Madry et al.'s PGD training, with TRADES and with IBP; all 512^3 MLPs.

For each net: clean accuracy, the strong suite's worst case and the certified accuracy (IBP) at
eps 0.1 / 0.2 / 0.3 on the same first ``strong_limit`` test images, each with n and its 95%
Clopper-Pearson interval; its training wall time and whether it trained (a net that did not is
marked and never enters a verdict as if it had); and the learning curves of every net.

Recipes (the profile sets epochs, PGD steps and batch size):
- Madry: x' only, sign PGD from a random start, eps 0.3 ramped linearly from 0 over the first
  half of the steps, step 2.5 eps_t / steps; Adam 1e-3 with cosine decay.
- TRADES: CE(f(x), y) + 6 KL(f(x) || f(x')), x' by sign ascent on the KL; same eps ramp and
  optimiser.
- IBP: eps_train 0.2, 5% clean, then eps and the weight of the worst-case cross-entropy
  (kappa 1 -> 0.5) ramped over 60% of the steps; Adam 5e-4, /10 at 75% and 90% of the steps
  (eps_train 0.4 with a 50% ramp and Adam 1e-3 collapsed: docs/baselines.md).
- RBFI certified: ``--certified-eps 0.35`` (docs/certification.md), trained from scratch.
"""

from __future__ import annotations

import rbfi.stats as stats
from rbfi.evaluation.curves import learning_curves_png
from rbfi.experiments.paper.common import health, net, strong_eval
from rbfi.experiments.render import curves_png, table
from rbfi.experiments.spec import Claim, Item, Job, Rendered, Results

EPS = (0.1, 0.2, 0.3)  # the radii reported (those of the profile's strong_eps)
RELU = "ReLU"


def relu_adversarial(profile, regime: str) -> Job:
    """ReLU 512^3 with Madry PGD training or TRADES at eps 0.3, eps ramped over half the steps."""
    extra = {"trades_beta": 6.0} if regime == "trades" else {}
    return net(
        profile,
        "relu",
        0,
        epochs=profile.baseline_epochs,
        batch_size=profile.baseline_batch,
        optimizer="adam",
        lr=1e-3,
        lr_schedule="cosine",
        adversarial=regime,
        adv_eps=0.3,
        adv_eps_ramp=0.5,
        adv_steps=profile.baseline_steps,
        label=f"ReLU {regime} baseline",
        **extra,
    )


def relu_ibp(profile) -> Job:
    """ReLU 512^3 with IBP at eps_train 0.2 (Gowal et al. 2018's for test eps 0.1, shortened)."""
    return net(
        profile,
        "relu",
        0,
        epochs=profile.ibp_epochs,
        optimizer="adam",
        lr=5e-4,
        lr_schedule="step",
        lr_decay_at=(0.75, 0.9),
        lr_decay_factor=0.1,
        certified_eps=0.2,
        certified_warmup=0.05,
        certified_ramp=0.6,
        certified_weight=0.5,
        certified_loss="cross_entropy",
        label="ReLU IBP baseline",
    )


class Baselines(Item):
    name = "baselines"
    title = "Baselines: RBFI against adversarially and certifiably trained ReLU nets"
    section = "6.4"

    def nets(self, profile) -> dict[str, Job]:
        return {
            "RBFI": net(profile, "rbfi", 0),
            "RBFI (certified training)": net(
                profile, "rbfi", 0, certified_eps=0.35, label="RBFI certified-trained (eps 0.35)"
            ),
            RELU: net(profile, "relu", 0),
            "ReLU (Madry PGD)": relu_adversarial(profile, "madry"),
            "ReLU (TRADES)": relu_adversarial(profile, "trades"),
            "ReLU (IBP)": relu_ibp(profile),
        }

    def evals(self, profile) -> tuple[dict[str, Job], dict[str, Job]]:
        nets = self.nets(profile)
        return nets, {label: strong_eval(profile, job) for label, job in nets.items()}

    def jobs(self, profile) -> list[Job]:
        nets, evals = self.evals(profile)
        return list(nets.values()) + list(evals.values())

    def render(self, results: Results, profile) -> Rendered:
        nets, evals = self.evals(profile)
        eps = [e for e in EPS if e in profile.strong_eps]
        data: dict = {"eps": eps, "nets": {}}
        rows, flags, problems = [], {}, {}
        for label, job in nets.items():
            entry, flags[label] = summarise(results, label, job, evals[label], eps)
            data["nets"][label] = entry
            if not entry["healthy"]:
                problems[label] = entry["problem"]
            rows.append(row(label, entry, eps))
        headers = (
            ["network", "clean"]
            + [f"worst case {e:g}" for e in eps]
            + [f"certified {e:g}" for e in eps]
            + ["training (min)", "trained?"]
        )
        claims = self.claims(data, flags, problems)
        n = next(iter(data["nets"].values()))["n"] if data["nets"] else 0
        curves = {label: results.train(job)["metrics"] for label, job in nets.items()}
        figures = {
            "baselines.png": accuracy_png(data),
            "learning-curves.png": learning_curves_png(
                curves, title=f"learning curves ({profile.name} profile)"
            ),
        }
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"Accuracy in % with its 95% Clopper-Pearson interval, on the first {n} test "
                f"images (the same images for every net): clean, the worst case over the "
                f"strong suite, and certified (interval bounds). Training time: the training "
                f"epochs' wall time on {profile.threads} thread(s). Recipes: docs/baselines.md. "
                f"A net marked *under-trained* or *failed* did not finish learning "
                f"(rbfi.training.health: clean accuracy still rising over its last epochs, "
                f"below its kind's floor, or near chance); claims resting on it are undecided.",
                table(headers, rows),
                claims_markdown_with_reasons(claims),
                "![accuracy per eps](baselines.png)",
                "![learning curves](learning-curves.png)",
            ]
        )
        return Rendered(markdown, data, figures, claims)

    @staticmethod
    def claims(data: dict, flags: dict, problems: dict) -> list[Claim]:
        nets = data["nets"]
        out = []
        targets = [
            ("ReLU (Madry PGD)", "worst", 0.1, 0.85),
            ("ReLU (TRADES)", "worst", 0.1, 0.85),
            ("ReLU (IBP)", "certified", 0.1, 0.90),
        ]
        for label, kind, eps, threshold in targets:
            if label not in nets or eps not in data["eps"]:
                continue
            estimate = estimate_of(nets[label][kind][f"{eps:g}"])
            verdict = stats.premise(
                stats.at_least(estimate, threshold), [p for k, p in problems.items() if k == label]
            )
            what = "worst case" if kind == "worst" else "certified accuracy"
            out.append(
                Claim(
                    f"target: {label} reaches {100 * threshold:.0f}% {what} at eps {eps:g}",
                    verdict.holds,
                    verdict.reason,
                )
            )
        for eps in data["eps"]:  # RBFI trained normally against each robustly trained ReLU net
            for other in ("ReLU (Madry PGD)", "ReLU (TRADES)", "ReLU (IBP)"):
                if "RBFI" not in nets or other not in nets:
                    continue
                key = f"{eps:g}"
                verdict = stats.greater(
                    estimate_of(nets["RBFI"]["worst"][key]),
                    estimate_of(nets[other]["worst"][key]),
                    ("RBFI", other),
                    flags=(flags["RBFI"]["worst"][key], flags[other]["worst"][key]),
                )
                verdict = stats.premise(
                    verdict, [p for k, p in problems.items() if k in ("RBFI", other)]
                )
                out.append(
                    Claim(
                        f"RBFI trained normally beats {other} in worst-case accuracy at "
                        f"eps {eps:g}",
                        verdict.holds,
                        verdict.reason,
                    )
                )
        return out


def summarise(
    results: Results, label: str, train: Job, evaluation: Job, eps_list
) -> tuple[dict, dict]:
    """One net's numbers ({"clean", "worst", "certified", ... as estimates' JSON}) and its
    per-example flags ({"worst": {eps: [bool]}, "certified": ...})."""
    metrics = results.train(train)["metrics"]
    result = results.evaluation(evaluation)
    n = int(result["n_examples"])
    clean = stats.proportion(
        sum(p == y for p, y in zip(result["clean_predictions"], result["labels"])), n
    )
    entry = {"n": n, "clean": clean.to_json(), "worst": {}, "certified": {}}
    flags: dict = {"worst": {}, "certified": {}}
    for kind, source in (("worst", "worst_case"), ("certified", "certified")):
        for eps in eps_list:
            key = f"{eps:g}"
            record = result[source][key]  # per-example flags ("certified" from format 3)
            correct = [c == "1" for c in record.get("correct", record.get("certified", ""))]
            flags[kind][key] = correct
            entry[kind][key] = stats.proportion(sum(correct), n).to_json()
    status = health(results, train)
    entry.update(
        train_seconds=sum(m["train_seconds"] for m in metrics),
        epochs=len(metrics),
        final_test_accuracy=metrics[-1]["test_accuracy"],
        healthy=status.trained,
        health=status.to_json(),
        problem=status.problem(label),
    )
    return entry, flags


def estimate_of(data: dict) -> stats.Estimate:
    return stats.Estimate(
        data["value"], data["low"], data["high"], data["n"], data["runs"], data["sd"]
    )


def row(label: str, entry: dict, eps: list[float]) -> list[str]:
    def text(data: dict) -> str:
        return estimate_of(data).text()

    status = entry["health"]["status"]
    name = label if entry["healthy"] else f"{label} ({status})"
    return (
        [name, text(entry["clean"])]
        + [text(entry["worst"][f"{e:g}"]) for e in eps]
        + [text(entry["certified"][f"{e:g}"]) for e in eps]
        + [
            f"{entry['train_seconds'] / 60:.1f}",
            "yes"
            if entry["healthy"]
            else f"**no** ({status}): " + "; ".join(entry["health"]["reasons"]),
        ]
    )


def claims_markdown_with_reasons(claims: list[Claim]) -> str:
    if not claims:
        return ""
    verdict = {True: "**holds**", False: "**does not hold**", None: "undecided"}
    rows = [(c.text, verdict[c.holds], c.evidence) for c in claims]
    return "### Targets and comparisons\n\n" + table(["claim", "here", "why"], rows, "lll")


def accuracy_png(data: dict) -> bytes:
    """Worst case and certified accuracy per eps for every net (under-trained ones dashed in
    the legend's name)."""
    panels = []
    for kind, title in (("worst", "worst case, strong suite"), ("certified", "certified (IBP)")):
        panel = {}
        for label, entry in data["nets"].items():
            name = label if entry["healthy"] else f"{label} ({entry['health']['status']})"
            xs = [0.0, *data["eps"]]
            ys = [entry["clean"]["value"]] + [entry[kind][f"{e:g}"]["value"] for e in data["eps"]]
            panel[name] = (xs, ys, None)
        panels.append((title, panel))
    return curves_png(panels, suptitle="Baselines: accuracy at eps (0 = clean)")


ITEM = Baselines()
