"""The nets and evaluations the items share (same settings, same job ids, trained once)."""

from __future__ import annotations

from dataclasses import replace

from rbfi.attacks.suites import SuiteOptions
from rbfi.evaluation import EvalConfig
from rbfi.experiments.profiles import Profile
from rbfi.experiments.spec import Job, Results, evaluate_job, train_job
from rbfi.models import ModelConfig
from rbfi.stats import Estimate, accuracy_estimate, over_runs, proportion
from rbfi.training import TrainConfig
from rbfi.training.health import Health, assess

NAMES = {"relu": "ReLU", "sigmoid": "Sigmoid", "rbfi": "RBFI", "rbf": "RBF"}
CHEAP_ATTACKS = ("fgsm", "ifgsm", "noise")
PAPER_PGD = ("pgd-paper-legacy", "pgd-paper")
# seconds per training example per epoch of a 512^3 net on a 2-core CPU, for the ETA and
# --estimate-only (measured: the quick profile's jobs, results/paper-quick/index.json)
SECONDS_PER_EXAMPLE = {"rbfi": 3e-4, "rbf": 2e-4, "relu": 8e-5, "sigmoid": 8e-5}
# one attack step on an example costs about this much for the cheap nets vs RBFI/RBF nets
ATTACK_SCALE = {"rbfi": 1.0, "rbf": 1.0, "relu": 0.1, "sigmoid": 0.1}


def layers(profile: Profile, width: int | None = None, deep: bool = False) -> tuple[int, ...]:
    if deep:
        return (profile.deep_width,) * profile.deep_layers + (10,)
    return (width or profile.width,) * 3 + (10,)


def net(
    profile: Profile,
    arch: str,
    seed: int = 0,
    *,
    width: int | None = None,
    deep: bool = False,
    geometry: str | None = None,
    epochs: int | None = None,
    u_bounds: tuple[float, float] = (0.01, 3.0),
    label: str = "",
    **train,
) -> Job:
    """A training job; RBFI nets default to alternating And / Or layers (^v^v, Table 1)."""
    sizes = layers(profile, width, deep)
    model_kwargs = {}
    if arch in ("rbfi", "rbf"):
        model_kwargs = {"geometry": geometry, "u_bounds": u_bounds}
    model = ModelConfig(arch=arch, layers=sizes, **model_kwargs)
    config = TrainConfig(
        model=model,
        epochs=epochs or profile.epochs,
        seed=seed,
        train_limit=profile.train_limit,
        test_limit=profile.test_limit,
        pixel_scale=profile.pixel_scale,
        **train,
    )
    factor = 1.0  # vs normal training: attack steps per batch, or the interval pass
    if config.adversarial != "none":
        factor = 1 + 0.75 * (config.adv_steps or 0)
    elif config.certified_eps is not None:
        factor = 2.5
    scale = sum(a * b for a, b in zip((784, *sizes), sizes)) / (784 * 512 + 2 * 512 * 512)
    cost = (
        config.epochs
        * (profile.train_limit or 60000)
        * SECONDS_PER_EXAMPLE[arch]
        * factor
        * max(scale, 0.05)
    )
    name = label or f"{model.describe()} seed {seed}"
    return train_job(config, f"train {name}", cost=cost)


def transfer_source(profile: Profile) -> Job:
    """The net the strong suite's transfer attack crafts its examples on: Table 1's first ReLU
    net, for every item (so each RBFI net's strong-suite evaluation is one shared job)."""
    return net(profile, "relu", 0)


def attack_scale(run: Job) -> float:
    """Relative cost of attacking ``run``'s net (RBFI/RBF 1; ReLU/sigmoid nets are cheaper)."""
    return ATTACK_SCALE[run.payload["train"]["model"]["arch"]]


def cheap_eval(profile: Profile, run: Job) -> Job:
    """FGSM, I-FGSM and noise over the eps grid on the test images, and the certificates."""
    config = EvalConfig(
        suite="paper", eps=profile.eps_grid, attacks=CHEAP_ATTACKS, check_subset=0, certify=True
    )
    n = profile.test_limit or 10000
    return evaluate_job(
        run,
        "attacks",
        f"eval {run.label[6:]} fgsm ifgsm noise",
        cost=n * 15 * len(profile.eps_grid) * 1e-4,
        limit=n,
        config=config,
    )


def pgd_eval(profile: Profile, run: Job) -> Job:
    """The paper's PGD, as the author ran it (one-sided projection) and corrected, on the first
    ``pgd_limit`` test images (first run only, as in the paper)."""
    options = SuiteOptions(
        paper_pgd_steps=profile.pgd_steps, paper_pgd_restarts=profile.pgd_restarts
    )
    config = EvalConfig(
        suite="paper",
        eps=profile.eps_grid,
        attacks=PAPER_PGD,
        check_subset=0,
        certify=False,
        options=options,
    )
    cost = profile.pgd_limit * profile.pgd_steps * profile.pgd_restarts * len(profile.eps_grid)
    return evaluate_job(
        run,
        "attacks",
        f"eval {run.label[6:]} paper pgd",
        cost=cost * 7e-5,  # no early stopping: about the same for every net
        limit=profile.pgd_limit,
        config=config,
    )


def strong_eval(profile: Profile, run: Job) -> Job:
    """The whole strong suite (worst case) and the certificates on ``strong_limit`` images; its
    transfer attack crafts on :func:`transfer_source` (none when ``run`` is that net), so every
    item that evaluates a net shares one job."""
    options = replace(profile.strong)
    config = EvalConfig(
        suite="strong", eps=profile.strong_eps, check_subset=0, certify=True, options=options
    )
    source = transfer_source(profile)
    with_source = source.id != run.id
    settings = {"config": config}
    if with_source:
        settings["transfer_source"] = source.id
    job = evaluate_job(
        run,
        "attacks",
        f"eval {run.label[6:]} strong suite",
        # measured: 1.9 s per image and eps for RBFI 512 with full budgets; the quick
        # profile's reduced budgets (AutoAttack's APGD only) about a fifth of that
        cost=profile.strong_limit
        * len(profile.strong_eps)
        * (2.0 if options.autoattack == "standard" else 0.4)
        * attack_scale(run),
        limit=profile.strong_limit,
        **settings,
    )
    return replace(job, deps=job.deps + ((source.id,) if with_source else ()))


def sensitivity_eval(run: Job) -> Job:
    return evaluate_job(run, "sensitivity", f"eval {run.label[6:]} sensitivity", cost=1.0)


def accuracy(results: Results, job: Job, attack: str, eps: float) -> float:
    """Accuracy of an evaluate job's ``attack`` at ``eps`` ("worst" / "certified" for the
    worst case and the certificates)."""
    data = results.evaluation(job)
    key = f"{eps:g}"
    if attack == "worst":
        return data["worst_case"][key]["accuracy"]
    if attack == "certified":
        return data["certified"][key]["accuracy"]
    return data["results"][attack][key]["accuracy"]


def curve(results: Results, jobs: list[Job], attack: str, eps_grid) -> tuple:
    """(eps, mean, sd) of an attack's accuracy over the runs of ``jobs``."""
    from rbfi.experiments.render import mean_sd

    means, sds = [], []
    for eps in eps_grid:
        mean, sd = mean_sd([accuracy(results, j, attack, eps) for j in jobs])
        means.append(mean)
        sds.append(sd if len(jobs) > 1 else None)
    return list(eps_grid), means, sds if len(jobs) > 1 else None


# -- numbers with their intervals, and the health of the nets behind them ----------------------


def test_images(job: Job) -> int:
    """How many test images a training job's clean accuracy was measured on."""
    return job.payload["train"].get("test_limit") or 10000


def clean(results: Results, job: Job) -> Estimate:
    """The final clean test accuracy of a training job, with its exact 95% interval."""
    return accuracy_estimate(results.final(job)["test_accuracy"], test_images(job))


def clean_runs(results: Results, jobs: list[Job]) -> Estimate:
    """The mean clean accuracy of several runs, with its 95% interval (one run: exact)."""
    values = [results.final(j)["test_accuracy"] for j in jobs]
    return over_runs(values, test_images(jobs[0]))


def flags(results: Results, job: Job, attack: str, eps: float) -> list[bool]:
    """Per-example outcome (right under the attack / certified) of an evaluate job."""
    data = results.evaluation(job)
    key = f"{eps:g}"
    if attack == "worst":
        row = data["worst_case"][key]
    elif attack == "certified":
        row = data["certified"][key]
    else:
        row = data["results"][attack][key]
    bits = row.get("certified", row.get("correct"))
    if not isinstance(bits, str):
        raise ValueError(f"{job.label}: no per-example flags for {attack} at eps {key}")
    return [b == "1" for b in bits]


def measured(results: Results, job: Job, attack: str, eps: float) -> Estimate:
    """An evaluate job's accuracy under ``attack`` at ``eps`` as k of n, with its interval."""
    right = flags(results, job, attack, eps)
    return proportion(sum(right), len(right))


def measured_runs(results: Results, jobs: list[Job], attack: str, eps: float) -> Estimate:
    """The mean over runs (each on the same n images) with its 95% interval."""
    if len(jobs) == 1:
        return measured(results, jobs[0], attack, eps)
    n = len(flags(results, jobs[0], attack, eps))
    return over_runs([accuracy(results, j, attack, eps) for j in jobs], n)


def health(results: Results, job: Job) -> Health:
    """Whether a training job's net finished learning (:mod:`rbfi.training.health`)."""
    index = results.train(job)
    return assess(index.get("metrics") or [], index.get("training") or {})


def net_name(run: Job) -> str:
    """A training job's net as tables name it: its label without "train " and the seed, e.g.
    'RBFI(512^, 512v, 512^, 10v)'."""
    return run.label[6:].rsplit(" seed", 1)[0]


def labelled(results: Results, name: str, jobs: Job | list[Job]) -> str:
    """``name`` as a table row or legend shows it: with the status of its runs appended when
    one did not finish learning, e.g. 'ReLU(Madry PGD) (failed)', so that a net that did not
    train is never shown as if it had."""
    runs = jobs if isinstance(jobs, list) else [jobs]
    bad = sorted({h.status for h in (health(results, job) for job in runs) if not h.trained})
    return f"{name} ({'/'.join(bad)})" if bad else name


def problems(results: Results, nets: dict[str, Job | list[Job]], ignore=()) -> list[str]:
    """What makes a claim resting on ``nets`` ({name: job or runs}) doubtful: one line per net
    with runs not converged (statuses in ``ignore`` excepted, e.g. "failed" for a claim that a
    net fails to learn), e.g. 'Sigmoid under-trained (seed 0: clean 75.9 < floor 95, +64.2
    points in the last 3 epochs; seed 1: ...)'."""
    out = []
    for name, jobs in nets.items():
        runs = jobs if isinstance(jobs, list) else [jobs]
        bad = []
        for job in runs:
            h = health(results, job)
            if not h.trained and h.status not in ignore:
                seed = job.payload["train"]["seed"]
                bad.append((h.status, f"seed {seed}: {h.short()}" if len(runs) > 1 else h.short()))
        if bad:
            statuses = "/".join(sorted({status for status, _ in bad}))
            out.append(f"{name} {statuses} ({'; '.join(text for _, text in bad)})")
    return out
