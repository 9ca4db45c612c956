"""What the budget hides: each net's certified accuracy extrapolated against compute from its
learning curve (:func:`rbfi.experiments.studies.compute.fit_power_law` on the later records),
as a table, plain notes on what it supports and what it does not, and a figure of the curves
against CPU minutes with the fits dashed. Every number here is an extrapolation, not a
measurement, and the page says so."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

from rbfi.experiments.render import table
from rbfi.experiments.studies.compute import PowerLawFit, fit_power_law

FIT_EPS = (0.3, 0.1)
HORIZON = 10.0  # the fits are read at, and drawn to, this multiple of a net's minutes
# the published certified accuracies of l_inf-dist nets on MNIST (5 x 5120 units, 450 GPU
# epochs; v2 README, docs/linf-dist.md): how far each curve would have to go
PUBLISHED = {0.3: 0.9320, 0.1: 0.9795}


def _number(x: float) -> float | str | None:
    """JSON-safe: inf as "inf", nan as None."""
    if math.isnan(x):
        return None
    return "inf" if math.isinf(x) else x


def _value(x) -> float:
    return math.nan if x is None else (math.inf if x == "inf" else float(x))


def analyse(entries: Mapping[str, dict], fit_from: float) -> dict:
    """{"targets": {eps: {"leader": (label, accuracy), "published": accuracy}}, "fits": {role:
    {eps: fit and readings, or {"error": why}}}}: per net and eps of :data:`FIT_EPS`, the power
    law fitted to its curve's later records, the accuracy it gives at :data:`HORIZON` times the
    net's minutes, and the minutes it needs to reach the best accuracy any net of the study
    measured (the leader's last record) and the published one. Failed nets are not fitted."""
    out: dict = {"fit_from": fit_from, "horizon": HORIZON, "targets": {}, "fits": {}}
    for eps in FIT_EPS:
        key = f"certified {eps:g}"
        finals = [
            (e["label"], e["curves"][key][-1])
            for e in entries.values()
            if key in e["curves"] and e["health"]["status"] != "failed"
        ]
        leader = max(finals, key=lambda item: item[1]) if finals else None
        out["targets"][f"{eps:g}"] = {"leader": leader, "published": PUBLISHED[eps]}
    for role, entry in entries.items():
        out["fits"][role] = {}
        for eps in FIT_EPS:
            out["fits"][role][f"{eps:g}"] = _fit(entry, eps, fit_from, out["targets"][f"{eps:g}"])
    return out


def _fit(entry: dict, eps: float, fit_from: float, targets: dict) -> dict:
    key = f"certified {eps:g}"
    if entry["health"]["status"] == "failed":
        return {"error": "the net did not learn"}
    if key not in entry["curves"]:
        return {"error": f"no per-epoch certified accuracy at {eps:g} recorded"}
    at, accuracy = entry["curve_minutes"][key], entry["curves"][key]
    fit = fit_power_law(at, accuracy, fit_from)
    if isinstance(fit, str):
        return {"error": fit}
    horizon = HORIZON * at[-1]
    out = fit.to_json() | {
        "last": [at[-1], accuracy[-1]],
        "at_horizon": [
            _number(fit.accuracy_at(horizon)),
            *map(_number, fit.accuracy_interval_at(horizon)),
        ],
    }
    for name, target in (
        ("leader", (targets["leader"] or (None, None))[1]),
        ("published", targets["published"]),
    ):
        if target is None or not 0 < target < 1:
            continue
        if accuracy[-1] >= target:
            out[f"to_{name}"] = "reached"
        else:
            out[f"to_{name}"] = [_number(x) for x in fit.minutes_to(target)]
    return out


def _minutes_text(reading) -> str:
    if reading is None:
        return "–"
    if reading == "reached":
        return "reached (measured)"
    estimate, low, high = map(_value, reading)
    if math.isinf(estimate):
        return "never on this fit (error not falling)"
    if math.isnan(low) or low <= 0:
        return f"~{estimate:.3g} [not bounded]"
    upper = "unbounded" if math.isinf(high) else f"{high:.3g}"
    return f"~{estimate:.3g} [{low:.3g}-{upper}]"


def markdown(analysis: dict, entries: Mapping[str, dict]) -> str:
    """The section: its warning, the table and the notes (:func:`notes`)."""
    rows, unfitted = [], []
    targets = analysis["targets"]
    for role, fits in analysis["fits"].items():
        for eps, fit in fits.items():
            label = entries[role]["label"]
            if "error" in fit:
                unfitted.append(f"{label} at eps {eps} ({fit['error']})")
                continue
            low, high = fit["exponent_interval"]
            value, lo, hi = map(_value, fit["at_horizon"])
            rows.append(
                [
                    label,
                    eps,
                    f"{fit['minutes'][0]:.1f}-{fit['minutes'][1]:.1f} ({fit['n']} epochs)",
                    f"{fit['exponent']:.2f} [{low:.2f}-{high:.2f}]",
                    f"{100 * value:.1f} [{100 * lo:.1f}-{100 * hi:.1f}]",
                    _minutes_text(fit.get("to_leader")),
                    _minutes_text(fit.get("to_published")),
                ]
            )
    leader = {
        eps: (f"{t['leader'][0]}'s {100 * t['leader'][1]:.1f}%" if t["leader"] else "–")
        for eps, t in targets.items()
    }
    headers = [
        "network",
        "eps",
        "fitted on (min)",
        "b in error ~ t^-b [95% CI]",
        f"certified % at {analysis['horizon']:g}x its minutes",
        "minutes to the leader's",
        "minutes to the published",
    ]
    intro = (
        "### What the budget hides (extrapolated, not measured)\n\n"
        f"Each net's certified error e = 1 - accuracy on its per-epoch test records, fitted as "
        f"a power law of the CPU minutes t, e = A t^-b, by least squares in log-log on the "
        f"records after {100 * analysis['fit_from']:.0f}% of its epochs; 95% intervals from "
        f"the fit's residuals (Student's t), minutes to a target by inverse prediction "
        f"(rbfi/experiments/studies/compute.py). Targets: the best accuracy any net here "
        f"measured (eps {', '.join(f'{e}: {v}' for e, v in leader.items())}) and the "
        f"published l_inf-dist nets' (eps "
        + ", ".join(f"{e}: {100 * t['published']:.2f}%" for e, t in targets.items())
        + ", 5 layers of 5120 units, 450 GPU epochs). **None of these numbers was measured.**"
    )
    parts = [intro, table(headers, rows, "ll" + "r" * 5) if rows else "No net was fitted."]
    if unfitted:
        parts.append("Not fitted: " + "; ".join(unfitted) + ".")
    return "\n\n".join(parts + [notes(analysis, entries)])


def notes(analysis: dict, entries: Mapping[str, dict]) -> str:
    """What the numbers support and what they do not, in plain words, with the comparison of
    the exponents of RBFI and l_inf-dist at the same shape where both were fitted."""
    lines = [
        "What these numbers support and what they do not:",
        "",
        "- *Measured*: the tables above, at these budgets, on these images. The curves against "
        "minutes are measurements too (on each training's own test images).",
        "- *Not measured*: every extrapolated number. A run's schedule is fixed by its planned "
        "epochs (the learning-rate decay, RBFI's eps ramp, l_inf-dist's p annealing and "
        "cross-entropy decay are fractions of them), so the later records of a short run are "
        "not what a longer run would show at the same minutes: a longer run anneals and "
        "decays later and usually ends higher.",
        "- A power law has no floor: a curve that saturates (the shape's or the recipe's "
        "limit) never reaches a target the fit says it reaches, so the minutes are at best "
        "a lower bound of what it would take, and a target beyond the published accuracy "
        "of much larger nets is not plausible for these shapes at any budget.",
        "- Where the 95% interval of the minutes is unbounded, the slope of the later records "
        "is not significantly negative: the curve does not say whether more compute helps.",
    ]
    fits = analysis["fits"]
    for eps in (f"{e:g}" for e in FIT_EPS):
        pair = [
            r
            for r in ("rbfi", "linf-v1", "linf-v2")
            if "error" not in fits.get(r, {}).get(eps, {"error": 1})
        ]
        if "rbfi" not in pair or len(pair) < 2:
            continue
        rbfi = fits["rbfi"][eps]
        for other in pair[1:]:
            theirs = fits[other][eps]
            a, b = rbfi["exponent_interval"], theirs["exponent_interval"]
            name = entries[other]["label"]
            if a[0] > b[1] or b[0] > a[1]:
                faster = entries["rbfi"]["label"] if a[0] > b[1] else name
                verdict = f"{faster}'s error falls faster with compute on these records"
            else:
                verdict = (
                    "the exponents' intervals overlap: these curves do not tell which unit "
                    "gains more from more compute"
                )
            lines.append(
                f"- eps {eps}: b = {rbfi['exponent']:.2f} [{a[0]:.2f}-{a[1]:.2f}] for "
                f"{entries['rbfi']['label']}, {theirs['exponent']:.2f} [{b[0]:.2f}-{b[1]:.2f}] "
                f"for {name}: {verdict} (an extrapolation, not a measurement)."
            )
    return "\n".join(lines)


def minutes_png(entries: Mapping[str, dict], analysis: dict, profile: str) -> bytes:
    """Three panels (certified at 0.3, at 0.1, clean) of accuracy against CPU minutes (log
    scale), one line per net; the fitted power laws dashed from their first fitted record to
    :data:`HORIZON` times the net's minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [f"certified {e:g}" for e in FIT_EPS] + ["clean"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes.flat, panels):
        for k, (role, entry) in enumerate(entries.items()):
            color = colors[k % len(colors)]
            if panel not in entry["curves"]:
                continue
            at, values = entry["curve_minutes"][panel], entry["curves"][panel]
            name = entry["label"] + ("" if entry["healthy"] else f" ({entry['health']['status']})")
            ax.plot(at, [100 * v for v in values], "-o", ms=3, color=color, label=name)
            fit = (
                analysis["fits"].get(role, {}).get(panel.split()[-1]) if panel != "clean" else None
            )
            if fit and "error" not in fit:
                law = PowerLawFit.from_json(fit)
                grid = [law.first * (HORIZON * at[-1] / law.first) ** (i / 40) for i in range(41)]
                ax.plot(grid, [100 * law.accuracy_at(t) for t in grid], "--", color=color, lw=1)
        ax.set_xscale("log")
        ax.set_title(f"{panel} (dashed: extrapolated)" if panel != "clean" else panel, fontsize=10)
        ax.set_xlabel("CPU minutes (train + eval)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"relatives: accuracy against compute ({profile} profile)", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
