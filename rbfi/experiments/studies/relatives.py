"""RBFI against its closest modern relative, l_inf-distance nets (issue 26; docs/linf-dist.md,
"The comparison"), at equal width and at equal compute, all trained on the CPU.

The nets (:class:`~rbfi.experiments.profiles.RelativesOptions` sets their shapes and recipes):

- *RBFI*: certified-trained, ``--certified-eps 0.35`` from scratch (the baselines item's net
  when its epochs are the profile's: the same job, trained once);
- *RBFI, u = 1*: the same recipe with every scale u fixed at 1 (``u_bounds=(1, 1)``): the
  ablation for "RBFI's per-input scales u help";
- *l_inf-dist (v2 loss)* and *(v1 loss)* at the same depth x width: the papers' recipe scaled
  to a CPU (p annealed from 8 to inf, the clipped hinge plus a decaying cross-entropy), and
  v1's unclipped hinge, which learns at small budgets where v2's barely moves;
- at the equal-compute shape ``wide`` (chosen from measured epoch times): an l_inf-dist net and
  an RBFI net certified-trained as above.

For each: clean accuracy, certified accuracy at 0.1 / 0.2 / 0.3 (RBFI: interval bounds;
l_inf-dist: interval bounds, the margin certificate and the better of the two per image), the
strong suite's worst case, all on the same first ``strong_limit`` test images with 95%
intervals; McNemar's test pairs the nets image by image; training health; compute minutes;
learning curves against minutes and their extrapolation (:mod:`.extrapolation`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import rbfi.stats as stats
from rbfi.experiments.paper.baselines import ITEM as BASELINES
from rbfi.experiments.paper.baselines import estimates_and_flags
from rbfi.experiments.paper.common import net, strong_eval, transfer_source
from rbfi.experiments.render import claim, page, table
from rbfi.experiments.spec import Claim, Item, Job, Rendered, Results
from rbfi.experiments.studies.compute import minutes, minutes_curves
from rbfi.experiments.studies.extrapolation import analyse, markdown, minutes_png

CLAIM_EPS = (0.3, 0.1)  # the radii of the claims (the profile's eps must hold them)
V1_LOSS = {"linf_hinge_clip": False, "linf_ce": 0.0, "linf_hinge_mix": 0.75}
V1_FLAGS = "--linf-no-clip --linf-ce 0 --linf-hinge-mix 0.75"
# an equal-compute comparison is decided only where the nets' minutes differ by at most this
# fraction, unless the difference favours the side that lost
COMPUTE_TOLERANCE = 0.2
# the roles of the nets, in the order of the tables
RBFI, RBFI_U1, LINF_V2, LINF_V1, LINF_WIDE, RBFI_WIDE = (
    "rbfi",
    "rbfi-u1",
    "linf-v2",
    "linf-v1",
    "linf-wide",
    "rbfi-wide",
)


@dataclass(frozen=True)
class Unit:
    """A net of the study: its ``role``, the name tables give it, its training job and how it
    was trained (for the page)."""

    role: str
    label: str
    job: Job
    recipe: str


def shape_text(depth: int, width: int) -> str:
    return f"{depth}x{width}"


def units(profile) -> dict[str, Unit]:
    """The study's nets under ``profile`` (role -> :class:`Unit`)."""
    o = profile.relatives
    sizes = (o.width,) * o.depth + (10,)
    shape = shape_text(o.depth, o.width)
    rbfi_epochs = o.rbfi_epochs or profile.epochs
    linf_epochs = o.linf_epochs or rbfi_epochs
    cert = {"certified_eps": o.rbfi_eps, "epochs": rbfi_epochs}
    rbfi = net(profile, "rbfi", 0, spec=sizes, **cert)
    shared = rbfi.id in {j.id for j in BASELINES.jobs(profile)}
    how = f"--certified-eps {o.rbfi_eps:g} from scratch, {rbfi_epochs} epochs"
    out = {
        RBFI: Unit(
            RBFI,
            f"RBFI {shape}",
            rbfi,
            how + (" (the baselines item's net: the same job)" if shared else ""),
        ),
        RBFI_U1: Unit(
            RBFI_U1,
            f"RBFI {shape}, u = 1",
            net(profile, "rbfi", 0, spec=sizes, u_bounds=(1.0, 1.0), **cert),
            how + ", every u fixed at 1 (u_bounds 1,1)",
        ),
        LINF_V2: Unit(
            LINF_V2,
            f"l_inf-dist {shape} (v2 loss)",
            net(profile, "linf-dist", 0, spec=sizes, epochs=linf_epochs),
            f"the v2 recipe (rbfi's defaults), {linf_epochs} epochs",
        ),
    }
    if o.linf_v1:
        out[LINF_V1] = Unit(
            LINF_V1,
            f"l_inf-dist {shape} (v1 loss)",
            net(profile, "linf-dist", 0, spec=sizes, epochs=linf_epochs, **V1_LOSS),
            f"v1's loss ({V1_FLAGS}), {linf_epochs} epochs",
        )
    if o.wide is not None:
        depth, width = o.wide
        wide_sizes, wide = (width,) * depth + (10,), shape_text(depth, width)
        epochs = o.wide_epochs or linf_epochs
        loss = V1_LOSS if o.wide_loss == "v1" else {}
        out[LINF_WIDE] = Unit(
            LINF_WIDE,
            f"l_inf-dist {wide} ({o.wide_loss} loss)",
            net(profile, "linf-dist", 0, spec=wide_sizes, epochs=epochs, **loss),
            f"the {o.wide_loss} recipe, {epochs} epochs: the shape that fits RBFI {shape}'s "
            f"minutes",
        )
        epochs = o.rbfi_wide_epochs or rbfi_epochs
        out[RBFI_WIDE] = Unit(
            RBFI_WIDE,
            f"RBFI {wide}",
            net(profile, "rbfi", 0, spec=wide_sizes, certified_eps=o.rbfi_eps, epochs=epochs),
            f"--certified-eps {o.rbfi_eps:g} from scratch, {epochs} epochs",
        )
    return out


def evaluation(profile, unit: Unit) -> Job:
    """The strong suite and the certificates of a net on the study's images (with the
    profile's strong limit and eps, the baselines item's job for the same net)."""
    o = profile.relatives
    sized = replace(profile, strong_limit=o.strong_limit, strong_eps=(0.0, *o.eps))
    return strong_eval(sized, unit.job)


class Relatives(Item):
    name = "relatives"
    title = "RBFI against l_inf-distance nets at equal width and equal compute"
    section = "study (issue 26)"
    paper = False

    def jobs(self, profile) -> list[Job]:
        """The nets, the net the strong suite's transfer attack crafts on (Table 1's ReLU net)
        and the evaluations."""
        nets = units(profile)
        trainings = [u.job for u in nets.values()] + [transfer_source(profile)]
        return trainings + [evaluation(profile, u) for u in nets.values()]

    def render(self, results: Results, profile) -> Rendered:
        nets = units(profile)
        eps = profile.relatives.eps
        data: dict = {"eps": list(eps), "nets": {}, "settings": _settings(profile)}
        flags: dict = {}
        for role, unit in nets.items():
            data["nets"][role], flags[role] = summarise(
                results, unit, evaluation(profile, unit), eps
            )
        entries = data["nets"]
        # fitted against minutes: a measurement of the machine, like the minutes themselves
        fits = analyse(entries, profile.relatives.fit_from)
        data["fits_against_minutes"] = fits
        n = next(iter(entries.values()))["n"]
        caption = (
            f"All nets trained on the CPU ({profile.threads} thread(s) per job), MNIST, "
            f"{profile.train_limit or 60000} training images. Accuracy in % [95% Clopper-"
            f"Pearson interval] on the first {n} test images, the same images for every net: "
            f"clean, certified (RBFI: interval bounds; l_inf-dist: the better of interval bounds "
            f"and the margin certificate per image, each alone in the second table) and the "
            f"strong suite's worst case. Compute: the training epochs' train + eval seconds "
            f"(the per-epoch test evaluation included). A net marked *failed* did not learn and "
            f"is left out of every comparison; one *under-trained* or *unknown* leaves the "
            f"claims resting on it undecided."
        )
        numbers = "\n\n".join(
            [
                table(
                    _headers(eps),
                    [_row(e, eps) for e in entries.values()],
                    "ll" + "r" * (3 + 2 * len(eps)),
                ),
                "Certificates by method (the better of the two per image counts above):",
                table(
                    ["network"] + [f"{m} {e:g}" for m in ("interval", "margin") for e in eps],
                    [_method_row(e, eps) for e in entries.values()],
                ),
                "How each net was trained:",
                "\n".join(f"- {u.label}: {u.recipe} (job `{u.job.id}`)" for u in nets.values()),
                markdown(fits, entries),
            ]
        )
        figures = {
            "relatives-minutes.png": (
                "certified and clean accuracy against CPU minutes, with the fitted "
                "extrapolation dashed",
                minutes_png(entries, fits, profile.name),
            )
        }
        return page(self, caption, numbers, self.claims(data, flags), data, figures)

    @staticmethod
    def claims(data: dict, flags: dict) -> list[Claim]:
        """RBFI against l_inf-dist at eps 0.3 and 0.1 (:func:`unit_verdict`), and RBFI against
        its u = 1 ablation at 0.3 (``data["nets"]``: role -> entry of :func:`summarise`;
        ``flags``: role -> {"certified": {eps key: per-image flags}})."""
        nets, out = data["nets"], []
        for eps in CLAIM_EPS:
            verdict, evidence = unit_verdict(nets, flags, eps)
            out.append(
                claim(
                    f"at equal width and compute, RBFI certifies more than l_inf-dist at eps "
                    f"{eps:g}",
                    verdict,
                    evidence,
                )
            )
        out.append(u_claim(nets, flags, 0.3))
        return out


def _settings(profile) -> dict:
    return asdict(profile.relatives)


def _headers(eps) -> list[str]:
    return (
        ["network", "shape", "clean"]
        + [f"certified {e:g}" for e in eps]
        + [f"worst case {e:g}" for e in eps]
        + ["compute (min)", "trained?"]
    )


def _text(entry: dict, kind: str, eps: float) -> str:
    return stats.Estimate.from_json(entry[kind][f"{eps:g}"]).text()


def _row(entry: dict, eps) -> list[str]:
    return (
        [shown(entry), entry["shape"], stats.Estimate.from_json(entry["clean"]).text()]
        + [_text(entry, "certified", e) for e in eps]
        + [_text(entry, "worst", e) for e in eps]
        + [
            f"{entry['minutes']:.3g}",
            "yes" if entry["healthy"] else f"**no** ({entry['health']['status']})",
        ]
    )


def _method_row(entry: dict, eps) -> list[str]:
    cells = []
    for method in ("interval", "margin"):
        by = entry["by_method"].get(method)
        cells += ["–" if by is None else stats.Estimate.from_json(by[f"{e:g}"]).text() for e in eps]
    return [shown(entry), *cells]


def shown(entry: dict) -> str:
    """A net's name with its health appended when it did not finish learning."""
    status = entry["health"]["status"]
    return entry["label"] if entry["healthy"] else f"{entry['label']} ({status})"


def summarise(results: Results, unit: Unit, evaluation: Job, eps_list) -> tuple[dict, dict]:
    """One net's numbers (estimates as JSON, compute, health, curves against minutes) and its
    per-image flags ({"certified": {eps key: flags}, "worst": ...})."""
    index = results.train(unit.job)
    metrics = index["metrics"]
    result = results.evaluation(evaluation)
    estimates, flags = estimates_and_flags(result, eps_list, ("certified", "worst"))
    n = estimates["n"]
    model = index["model"]
    layers = model["layers"][:-1]
    entry: dict = {
        "role": unit.role,
        "label": unit.label,
        "arch": model["arch"],
        "shape": shape_text(len(layers), layers[0]),
        "recipe": unit.recipe,
        "job": unit.job.id,
        **estimates,
        "by_method": {},
    }
    for eps in eps_list:
        key = f"{eps:g}"
        for method, sub in (result["certified"][key].get("methods") or {}).items():
            right = sum(c == "1" for c in sub["certified"])
            entry["by_method"].setdefault(method, {})[key] = stats.proportion(right, n).to_json()
    if not entry["by_method"]:  # RBFI nets: interval bounds only
        entry["by_method"]["interval"] = entry["certified"]
    health = results.health(unit.job)
    curves = minutes_curves(metrics)
    entry.update(
        minutes=minutes(metrics)[-1] if metrics else 0.0,
        train_minutes=sum(m.get("train_seconds", 0) for m in metrics) / 60,
        epochs=len(metrics),
        healthy=health.trained,
        health=health.to_json() | {"short": health.short()},
        # per epoch: the accuracies (results) and the minutes they came at (a measurement of
        # the machine: keys ending in "minutes" are left out when reproductions are compared)
        curves={k: list(v) for k, (_, v) in curves.items()},
        curve_minutes={k: list(t) for k, (t, _) in curves.items()},
    )
    return entry, flags


# -- the claims ------------------------------------------------------------------------------


def failed(entry: dict) -> bool:
    return entry["health"]["status"] == "failed"


def doubts(*entries: dict) -> list[stats.Doubt]:
    """The nets among ``entries`` that did not finish learning."""
    return [
        stats.Doubt(e["label"], e["health"]["status"], e["health"].get("short", ""))
        for e in entries
        if not e["healthy"]
    ]


def compare(
    nets: dict, flags: dict, a: str, b: str, eps: float, minutes_check: bool = False
) -> stats.Verdict:
    """ "net ``a`` certifies more than net ``b`` at ``eps``" (McNemar on the same images),
    undecided where either did not finish learning. ``minutes_check`` (a comparison at equal
    compute): also undecided where the minutes differ by more than ``COMPUTE_TOLERANCE`` in
    the winner's favour (``b`` had fewer minutes and lost, or more and won)."""
    key = f"{eps:g}"
    first, second = nets[a], nets[b]
    x, y = (stats.Estimate.from_json(nets[r]["certified"][key]) for r in (a, b))
    verdict = stats.greater(
        x,
        y,
        (first["label"], second["label"]),
        flags=(flags[a]["certified"][key], flags[b]["certified"][key]),
    )
    if minutes_check and first["minutes"] > 0 and verdict.status != stats.UNDECIDED:
        ratio = second["minutes"] / first["minutes"]
        unfair = (verdict.status == stats.HOLDS and ratio < 1 - COMPUTE_TOLERANCE) or (
            verdict.status == stats.FAILS and ratio > 1 + COMPUTE_TOLERANCE
        )
        if unfair:
            return stats.Verdict(
                stats.UNDECIDED,
                f"compute not equal: {second['label']} had {ratio:.2f}x the minutes of "
                f"{first['label']} ({second['minutes']:.1f} vs {first['minutes']:.1f}), which "
                f"favours the winner; the numbers alone: {verdict.status}",
                (verdict.reason,),
            )
    return stats.premise(verdict, doubts(first, second))


def _against(
    nets: dict,
    flags: dict,
    rbfi: str,
    opponents: list[str],
    eps: float,
    what: str,
    minutes_check: bool = False,
) -> stats.Verdict:
    """RBFI net ``rbfi`` against every l_inf-dist net of ``opponents`` that learned."""
    present = [r for r in opponents if r in nets]
    if rbfi not in nets or not present:
        return stats.Verdict(stats.UNDECIDED, f"{what}: not measured in this profile")
    learned = [r for r in present if not failed(nets[r])]
    if not learned:
        names = ", ".join(nets[r]["label"] for r in present)
        return stats.Verdict(
            stats.UNDECIDED, f"{what}: every l_inf-dist net failed to learn ({names})"
        )
    parts = [compare(nets, flags, rbfi, r, eps, minutes_check) for r in learned]
    verdict = stats.all_of(parts)
    left_out = [nets[r]["label"] for r in present if r not in learned]
    if left_out:
        note = f"left out: {', '.join(left_out)} failed to learn"
        return stats.Verdict(verdict.status, verdict.reason, verdict.details + (note,))
    return verdict


def unit_verdict(nets: dict, flags: dict, eps: float) -> tuple[stats.Verdict, str]:
    """ "At equal width and compute, RBFI certifies more than l_inf-dist at ``eps``": a
    conjunction of (1) equal width: RBFI against each l_inf-dist net of its shape that
    learned (the v2 and v1 losses), (2) equal compute: RBFI against the l_inf-dist net of the
    equal-compute shape (undecided where their minutes differ by more than
    ``COMPUTE_TOLERANCE`` in the winner's favour), (3) equal width at that shape: the RBFI net
    of that shape against it. A part not measured in the profile leaves it undecided."""
    parts = [
        _against(nets, flags, RBFI, [LINF_V2, LINF_V1], eps, "equal width"),
        _against(nets, flags, RBFI, [LINF_WIDE], eps, "equal compute", minutes_check=True),
        _against(nets, flags, RBFI_WIDE, [LINF_WIDE], eps, "equal width at the wide shape"),
    ]
    key = f"{eps:g}"
    evidence = "; ".join(
        f"{e['label']} {stats.Estimate.from_json(e['certified'][key]).text()} "
        f"({e['minutes']:.3g} min)"
        for r, e in nets.items()
        if r != RBFI_U1
    )
    n = next(iter(nets.values()))["n"] if nets else 0
    return stats.all_of(parts), f"{evidence} (n = {n})"


def u_claim(nets: dict, flags: dict, eps: float) -> Claim:
    """ "RBFI's per-input scales u help": RBFI certifies more than its u = 1 ablation."""
    text = f"RBFI's per-input scales u help (certified accuracy at eps {eps:g})"
    if RBFI not in nets or RBFI_U1 not in nets:
        return claim(text, stats.Verdict(stats.UNDECIDED, "not measured"), "–")
    key = f"{eps:g}"
    a, b = (stats.Estimate.from_json(nets[r]["certified"][key]) for r in (RBFI, RBFI_U1))
    evidence = f"{nets[RBFI]['label']} {a.text()}, {nets[RBFI_U1]['label']} {b.text()}"
    return claim(text, compare(nets, flags, RBFI, RBFI_U1, eps), f"{evidence} (n = {a.n})")


ITEM = Relatives()
