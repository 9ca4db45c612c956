"""Table 4 (Sec. 6.7): the sensitivity bounds of eq. (7) and (8) of the trained nets."""

from __future__ import annotations

from rbfi.experiments.paper.common import accuracy, cheap_eval, net, sensitivity_eval
from rbfi.experiments.paper.fig5 import variants
from rbfi.experiments.render import claims_markdown, pct, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results


class Table4(Item):
    name = "table4"
    title = "Table 4: sensitivity bounds (eq. 7, 8) of trained nets"
    section = "6.7"

    def runs(self, profile) -> dict:
        runs = {f"RBFI, {label}": job for label, job in variants(profile).items()}
        runs["ReLU"] = net(profile, "relu", 0)
        runs["Sigmoid"] = net(profile, "sigmoid", 0)
        lam = max(profile.relu_lambdas)
        runs[f"ReLU, lambda {lam:g}"] = net(
            profile, "relu", 0, reg_lambda=lam, label=f"ReLU lambda {lam:g}"
        )
        return runs

    def jobs(self, profile):
        runs = self.runs(profile)
        return (
            list(runs.values())
            + [sensitivity_eval(j) for j in runs.values()]
            + [cheap_eval(profile, j) for j in runs.values()]
        )

    def render(self, results: Results, profile) -> Rendered:
        runs = self.runs(profile)
        data, rows = {}, []
        for label, job in runs.items():
            bound = results.evaluation(sensitivity_eval(job))["bound"]
            fgsm = accuracy(results, cheap_eval(profile, job), "fgsm", profile.table_eps)
            clean = results.final(job)["test_accuracy"]
            data[label] = {"bound": bound, "clean": clean, "fgsm": fgsm}
            rows.append([label, f"{bound:.4g}", pct(clean), pct(fgsm)])
        relu = {k: v for k, v in data.items() if k.startswith("ReLU")}
        rbfi = {k: v for k, v in data.items() if k.startswith("RBFI")}
        ordering = sorted(data, key=lambda k: data[k]["bound"])
        fgsm_order = sorted(data, key=lambda k: -data[k]["fgsm"])
        claims = [
            Claim(
                "the bounds do not rank architectures by their robustness",
                ordering != fgsm_order,
                "by bound: " + ", ".join(ordering) + "; by FGSM accuracy: " + ", ".join(fgsm_order),
            ),
            Claim(
                "a regularised ReLU net can have a bound comparable to RBFI's and still be fragile",
                min(v["bound"] for v in relu.values())
                <= 10 * max(v["bound"] for v in rbfi.values())
                and min(v["fgsm"] for v in relu.values()) < 0.5,
                ", ".join(
                    f"{k}: {v['bound']:.4g} (FGSM {pct(v['fgsm'])})" for k, v in relu.items()
                ),
            ),
        ]
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"Upper bounds on the l_inf sensitivity of the outputs (eq. 7 for ReLU and sigmoid "
                f"nets, eq. 8 for RBFI), beside clean and FGSM accuracy (%) at eps "
                f"{profile.table_eps:g}.",
                table(["network", "sensitivity bound", "clean", "FGSM"], rows),
                claims_markdown(claims),
            ]
        )
        return Rendered(markdown, data, {}, claims)


ITEM = Table4()
