"""Convolutional RBFI nets (issue 25; the paper's Sec. 7: "One obvious and necessary study is
to build convolutional networks out of RBFI neurons"), docs/conv.md.

Nets (MNIST): the RBFI MLP trained normally (Table 1's net) and certified-trained (the
baselines item's), both reused; an RBFI CNN trained normally and RBFI CNNs certified-trained
for eps 0.1 and for 0.3; ReLU CNNs of the same layer spec trained normally, with Madry's PGD,
with TRADES (both at eps 0.3) and with IBP for 0.1 and for 0.3. Every CNN's recipe is the
profile's (:class:`rbfi.experiments.recipes.ConvStudy`).

Per net: clean accuracy on the profile's test images (all 10,000 from the standard profile
on); the strong suite's worst case and the certified accuracy (interval bounds) at eps 0.1 /
0.2 / 0.3 on the first ``strong_limit`` test images, the same for every net, each with its 95%
Clopper-Pearson interval; its parameters, training health (a net that did not finish learning,
or whose robust training collapsed, is marked and every claim resting on it is undecided), and
the minutes of its training and of its evaluation.

Claims, each over the eps of 0.1 / 0.2 / 0.3 the profile's strong suite runs at (a
conjunction: it holds only if it holds at every eps, does not hold if it fails at one):

- "RBFI conv nets keep the MLP's resistance to attacks": at each eps the worst case of the RBFI
  CNN trained normally is at most :data:`MARGIN` (2 points) below that of the RBFI MLP trained
  normally, on the same images: holds where the 95% interval of the paired difference
  (:func:`rbfi.stats.paired_difference`) lies above -2 points, does not hold where it lies
  below, undecided where it contains -2.
- "certified-trained RBFI CNNs certify more than the certified-trained RBFI MLP": at each eps
  the RBFI CNN certified-trained for it (the smallest training target >= eps: the 0.1 net at
  0.1, the 0.3 net at 0.2 and 0.3) certifies more of the same images than the MLP (McNemar's
  exact test, p < 0.05; does not hold where the MLP certifies significantly more).
- "... more than IBP-trained ReLU CNNs of the same size": the same against the ReLU CNN
  IBP-trained for that eps (same layer spec; the RBFI net has twice the weights: u and w).
"""

from __future__ import annotations

import rbfi.stats as stats
from rbfi.evaluation.curves import learning_curves_png
from rbfi.experiments.paper.baselines import ITEM as BASELINES
from rbfi.experiments.paper.baselines import accuracy_png, net_doubts, row, summarise
from rbfi.experiments.paper.common import recipe_net, strong_eval, transfer_source
from rbfi.experiments.paper.measure import clean
from rbfi.experiments.render import claim, page, table
from rbfi.experiments.spec import Claim, Item, Job, Rendered, Results
from rbfi.models import ModelConfig, build_model

EPS = (0.1, 0.2, 0.3)  # the radii reported (those of the profile's strong_eps)
MARGIN = 0.02  # "keeps the MLP's resistance": at most 2 points below it
MLP, MLP_CERT = "RBFI MLP", "RBFI MLP (certified-trained)"
CNN = "RBFI CNN"
CNN_CERT = {0.1: "RBFI CNN (certified for 0.1)", 0.3: "RBFI CNN (certified for 0.3)"}
IBP = {0.1: "ReLU CNN (IBP for 0.1)", 0.3: "ReLU CNN (IBP for 0.3)"}
# the recipe (a field of ConvStudy) of each CNN, by its name in the table
RECIPES = {
    CNN: "rbfi",
    CNN_CERT[0.1]: "rbfi_cert_01",
    CNN_CERT[0.3]: "rbfi_cert_03",
    "ReLU CNN": "relu",
    "ReLU CNN (Madry PGD)": "relu_madry",
    "ReLU CNN (TRADES)": "relu_trades",
    IBP[0.1]: "relu_ibp_01",
    IBP[0.3]: "relu_ibp_03",
}
KEEPS = "RBFI conv nets keep the MLP's resistance to attacks"
BEATS_MLP = "certified-trained RBFI CNNs certify more than the certified-trained RBFI MLP"
BEATS_IBP = "certified-trained RBFI CNNs certify more than IBP-trained ReLU CNNs of the same size"


def study_net(profile, name: str) -> Job:
    """The training job of the CNN ``name`` (a key of :data:`RECIPES`) under ``profile``."""
    study = profile.conv
    field = RECIPES[name]
    model = study.model(field)
    return recipe_net(
        profile, getattr(study, field), name, spec=model.layers, geometry=model.geometry
    )


def trained_for(by_target: dict[float, str], eps: float) -> str | None:
    """Of ``by_target`` ({training target eps: net}), the net trained for the smallest target
    >= ``eps`` (None when every target is smaller)."""
    targets = sorted(t for t in by_target if t >= eps - 1e-9)
    return by_target[targets[0]] if targets else None


def parameters(job: Job) -> int:
    """The parameter count of a training job's net."""
    model = build_model(ModelConfig.from_json(job.payload["train"]["model"]))
    return sum(p.numel() for p in model.parameters())


class ConvItem(Item):
    name = "conv"
    title = "Convolutional RBFI nets: certified and attacked, against ReLU CNNs and RBFI MLPs"
    section = "beyond the paper (Sec. 7)"
    paper = False

    def nets(self, profile) -> dict[str, Job]:
        mlps = BASELINES.nets(profile)  # the very jobs of Table 1 and the baselines item
        out = {MLP: mlps["RBFI"], MLP_CERT: mlps["RBFI (certified training)"]}
        return out | {name: study_net(profile, name) for name in RECIPES}

    def evals(self, profile) -> tuple[dict[str, Job], dict[str, Job]]:
        nets = self.nets(profile)
        return nets, {label: strong_eval(profile, job) for label, job in nets.items()}

    def jobs(self, profile) -> list[Job]:
        nets, evals = self.evals(profile)
        source = [transfer_source(profile)]  # the strong suite's transfer attack crafts on it
        return list(nets.values()) + source + list(evals.values())

    def render(self, results: Results, profile) -> Rendered:
        nets, evals = self.evals(profile)
        eps = [e for e in EPS if e in profile.strong_eps]
        data: dict = {"eps": eps, "margin": MARGIN, "nets": {}}
        per_example: dict = {}
        for label, job in nets.items():
            entry, per_example[label] = summarise(results, label, job, evals[label], eps)
            entry.update(
                model=ModelConfig.from_json(job.payload["train"]["model"]).describe(),
                parameters=parameters(job),
                clean_test=clean(results, job).to_json(),
                evaluation_seconds=results.evaluation(evals[label]).get("job_seconds", 0.0),
            )
            data["nets"][label] = entry
        doubts = net_doubts(data["nets"])
        first = next(iter(data["nets"].values()))
        caption = (
            f"Accuracy in % with its 95% Clopper-Pearson interval. Clean: on the "
            f"{first['clean_test']['n']} test images of the profile; worst case (over the strong "
            f"suite) and certified (interval bounds): on the first {first['n']} test images, the "
            f"same for every net. The two MLPs are Table 1's RBFI net and the baselines item's "
            f"certified-trained one; the CNNs' recipes are the profile's "
            f"(rbfi/experiments/recipes.py; docs/conv.md). ReLU CNNs have the RBFI CNNs' layer "
            f"spec (the RBFI nets have twice the weights: u and w). Minutes: the training epochs' "
            f"and the evaluation's wall time on {profile.threads} thread(s). A net marked "
            f"*under-trained*, *failed* or *unknown* did not show that it finished learning "
            f"(rbfi.training.health: clean accuracy still rising over its last epochs, a robust "
            f"accuracy collapsed, near chance, or a single epoch); claims resting on it are "
            f"undecided."
        )
        headers = (
            ["network", "model", "parameters", "clean"]
            + [f"worst case {e:g}" for e in eps]
            + [f"certified {e:g}" for e in eps]
            + ["training (min)", "evaluation (min)", "trained?"]
        )
        rows = [
            row(
                label,
                entry,
                eps,
                clean="clean_test",
                details=(entry["model"], f"{entry['parameters']:,}"),
                minutes=("train_seconds", "evaluation_seconds"),
            )
            for label, entry in data["nets"].items()
        ]
        curves = {label: results.train(job)["metrics"] for label, job in nets.items()}
        learning = learning_curves_png(curves, title=f"learning curves ({profile.name} profile)")
        suptitle = "Conv study: accuracy at eps (0 = clean)"
        figures = {
            "conv.png": ("accuracy per eps", accuracy_png(data, suptitle)),
            "learning-curves.png": ("learning curves (certified accuracy per epoch)", learning),
        }
        claims = self.claims(data, per_example, doubts)
        numbers = table(headers, rows, "ll" + "r" * (len(headers) - 2))
        return page(self, caption, numbers, claims, data, figures)

    @staticmethod
    def claims(data: dict, flags: dict, doubts: list[stats.Doubt]) -> list[Claim]:
        """The three claims of the module docstring from ``data`` ({"eps", "nets": {label:
        {"worst" / "certified": {eps: estimate JSON}}}}), the per-example ``flags`` ({label:
        {"worst" / "certified": {eps: [bool]}}}) and the ``doubts`` about the nets."""
        nets, keys = data["nets"], [f"{e:g}" for e in data["eps"]]

        def estimate(label: str, kind: str, key: str) -> stats.Estimate:
            return stats.Estimate.from_json(nets[label][kind][key])

        def decide(text: str, kind: str, parts: list[tuple]) -> list[Claim]:
            """One claim from its parts, (eps key, verdict, net a, net b) per eps."""
            if not parts:
                return []
            verdict = stats.all_of(
                stats.Verdict(v.status, f"eps {key}: {v.reason}", v.details)
                for key, v, _, _ in parts
            )
            labels = {name for *_, a, b in parts for name in (a, b)}
            verdict = stats.premise(verdict, [d for d in doubts if d.subject in labels])
            evidence = "; ".join(
                f"eps {key}: {a} {estimate(a, kind, key).text()}, {b} "
                f"{estimate(b, kind, key).text()}"
                for key, _, a, b in parts
            )
            n = estimate(parts[0][2], kind, parts[0][0]).n
            return [claim(text, verdict, f"{evidence} (n = {n})")]

        keeps, beats_mlp, beats_ibp = [], [], []
        for key in keys:
            if CNN in nets and MLP in nets:
                pair = (CNN, MLP)
                verdict = stats.not_worse(
                    estimate(CNN, "worst", key),
                    estimate(MLP, "worst", key),
                    MARGIN,
                    (flags[CNN]["worst"][key], flags[MLP]["worst"][key]),
                    pair,
                )
                keeps.append((key, verdict, *pair))
            cnn = trained_for({e: n for e, n in CNN_CERT.items() if n in nets}, float(key))
            for other, out in (
                (MLP_CERT if MLP_CERT in nets else None, beats_mlp),
                (trained_for({e: n for e, n in IBP.items() if n in nets}, float(key)), beats_ibp),
            ):
                if cnn is None or other is None:
                    continue
                verdict = stats.greater(
                    estimate(cnn, "certified", key),
                    estimate(other, "certified", key),
                    (cnn, other),
                    flags=(flags[cnn]["certified"][key], flags[other]["certified"][key]),
                )
                out.append((key, verdict, cnn, other))
        return (
            decide(KEEPS, "worst", keeps)
            + decide(BEATS_MLP, "certified", beats_mlp)
            + decide(BEATS_IBP, "certified", beats_ibp)
        )


ITEM = ConvItem()
