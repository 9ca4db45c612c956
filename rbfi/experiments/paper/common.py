"""The nets and evaluations the items share (same settings, same job ids, trained once), and
which evaluation measured which attack (:func:`sources`). Reading their numbers:
:mod:`rbfi.experiments.paper.measure`."""

from __future__ import annotations

from dataclasses import replace

from rbfi.attacks.suites import SuiteOptions
from rbfi.evaluation import EvalConfig
from rbfi.experiments.profiles import Profile
from rbfi.experiments.recipes import Recipe
from rbfi.experiments.spec import Job, evaluate_job, train_job
from rbfi.models import ModelConfig
from rbfi.nn.modules import U_BOUNDS
from rbfi.training import TrainConfig

NAMES = {"relu": "ReLU", "sigmoid": "Sigmoid", "rbfi": "RBFI", "rbf": "RBF"}
CHEAP_ATTACKS = ("fgsm", "ifgsm", "noise")
PAPER_PGD = ("pgd-paper-legacy", "pgd-paper")
# seconds per training example per epoch of a 512^3 net on a 2-core CPU, for the ETA and
# --estimate-only (measured: the quick profile's jobs, results/paper-quick/index.json)
SECONDS_PER_EXAMPLE = {
    "rbfi": 3e-4,
    "rbf": 2e-4,
    "relu": 8e-5,
    "sigmoid": 8e-5,
    "linf-dist": 3e-4,  # times linf_step_factor: RBFI's step times the layer's measured ratio
}
# the elements of a 512^3 MLP that SECONDS_PER_EXAMPLE was measured on, and the conv path's
# speed per element relative to the dense kernel's (benchmarks/results/conv-cpu.md: 0.82x)
REFERENCE_ELEMENTS = 784 * 512 + 2 * 512 * 512
CONV_SPEED = 0.82
# one attack step on an example costs about this much for the cheap nets vs RBFI/RBF nets
# (l_inf-dist nets at p = inf: 0.71x an RBFI layer's forward + backward, docs/linf-dist.md)
ATTACK_SCALE = {"rbfi": 1.0, "rbf": 1.0, "relu": 0.1, "sigmoid": 0.1, "linf-dist": 0.71}
# an l_inf-dist layer's forward + backward relative to the RBFI layer's (784 -> 512, batch 100,
# one thread: docs/linf-dist.md, benchmarks/results/linf-cpu-1thread): an integer p (8, binary
# powering), a fractional one (log2 and exp2 per term: p while annealed), p = inf (the max
# kernel without pseudogradients)
LINF_STEP_COST = {"integer": 2.1, "fractional": 5.4, "inf": 0.71}


def linf_step_factor(config: TrainConfig) -> float:
    """The mean cost of an l_inf-dist net's training step relative to an RBFI net's of the same
    shape: p = p_start before the annealing window (fractions a, b of the steps), a fractional
    p within it, p_end after it (inf when p_end >= 100, as the trainer does):
    a c(p_start) + (b - a) c(fractional) + (1 - b) c(p_end), c from :data:`LINF_STEP_COST`."""

    def cost(p: float) -> float:
        if p >= 100:
            return LINF_STEP_COST["inf"]
        return LINF_STEP_COST["integer" if float(p).is_integer() else "fractional"]

    a, b = config.linf_p_anneal
    between = LINF_STEP_COST["fractional"] if b > a else 0.0
    return a * cost(config.linf_p_start) + (b - a) * between + (1 - b) * cost(config.linf_p_end)


def layers(profile: Profile, width: int | None = None, deep: bool = False) -> tuple[int, ...]:
    if deep:
        return (profile.deep_width,) * profile.deep_layers + (10,)
    return (width or profile.width,) * 3 + (10,)


def elements(model: ModelConfig) -> float:
    """The cost of one example's forward pass, in dense-kernel elements: sum over the layers of
    outputs x inputs per output (a dense layer: in x out; a conv layer: positions x out_channels
    x its window C k k, counted 1 / CONV_SPEED times as the conv path runs slower per element).
    The paper's 784-512-512-512-10 MLP: 930,816; RBFI(c16k5s2, c32k4s2, 512, 10): 262,400
    conv elements (57,600 + 204,800, counted as 320,000) and 414,720 dense ones: 734,720."""
    shapes = model.feature_shapes if model.is_conv else [(model.in_features, 1, 1)]
    conv = 0
    for spec, (c_in, _, _), (c_out, h, w) in zip(model.conv_layers, shapes, shapes[1:]):
        conv += h * w * c_out * c_in * spec.kernel * spec.kernel
    c, h, w = shapes[-1]
    sizes = (c * h * w, *model.dense_layers)
    dense = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return dense + conv / CONV_SPEED


def net(
    profile: Profile,
    arch: str,
    seed: int = 0,
    *,
    width: int | None = None,
    deep: bool = False,
    spec: str | tuple | None = None,
    geometry: str | None = None,
    epochs: int | None = None,
    u_bounds: tuple[float, float] = U_BOUNDS,
    model_settings: dict | None = None,
    u_init: str | None = None,
    label: str = "",
    **train,
) -> Job:
    """A training job; RBFI nets default to alternating And / Or layers (^v^v, Table 1).
    ``spec``: the layers, output included, as a layer spec (e.g. "c16k5s2,c32k4s2,512,10") or
    a tuple (default: 3 hidden layers of ``width``, or the deep ones); ``u_init``: how the u of
    RBFI / RBF units start (default: by their kind); ``model_settings``: other ModelConfig
    settings (e.g. w_bounds)."""
    sizes = (
        (spec if isinstance(spec, str) else tuple(spec)) if spec else layers(profile, width, deep)
    )
    model_kwargs = dict(model_settings or {})
    if arch in ("rbfi", "rbf"):
        model_kwargs = {
            "geometry": geometry,
            "u_bounds": u_bounds,
            "u_init": u_init,
            **model_kwargs,
        }
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
    elif arch == "linf-dist":
        factor = linf_step_factor(config)
    scale = elements(model) / REFERENCE_ELEMENTS
    cost = (
        config.epochs
        * (profile.train_limit or 60000)
        * SECONDS_PER_EXAMPLE[arch]
        * factor
        * max(scale, 0.05)
    )
    return train_job(config, label or f"{model.describe()} seed {seed}", cost=cost)


def recipe_net(profile: Profile, recipe: Recipe, label: str, **model) -> Job:
    """The training job of ``recipe`` under ``profile`` (:func:`net` with the recipe's kind,
    epochs, seed (default 0), model settings and training settings); ``model``: :func:`net`'s
    layer keywords (``spec``, ``geometry``)."""
    train = recipe.train()
    seed = train.pop("seed", 0)
    return net(
        profile,
        recipe.arch,
        seed,
        epochs=recipe.epochs,
        model_settings=recipe.model(),
        label=label,
        **model,
        **train,
    )


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
        "fgsm ifgsm noise",
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
        "paper pgd",
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
        "strong suite",
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
    return evaluate_job(run, "sensitivity", "sensitivity", cost=1.0)


# the evaluation that measures each attack (and the worst case) on a net
SOURCE = {
    **{attack: "cheap" for attack in CHEAP_ATTACKS},
    **{attack: "pgd" for attack in PAPER_PGD},
    "worst": "strong",
}


def sources(profile: Profile, runs: list[Job], attack: str, certified_from: str = "strong"):
    """The evaluation jobs that measured ``attack`` on a net's ``runs``: FGSM, I-FGSM and noise
    on every run, the paper's PGD and the strong suite (its worst case) on the first, as the
    paper ran PGD; the certificates come with the strong suite or, ``certified_from="cheap"``,
    with the cheap evaluation of every run."""
    kind = SOURCE.get(attack, certified_from if attack == "certified" else None)
    if kind == "cheap":
        return [cheap_eval(profile, run) for run in runs]
    if kind == "pgd":
        return [pgd_eval(profile, runs[0])]
    if kind == "strong":
        return [strong_eval(profile, runs[0])]
    raise ValueError(f"no evaluation measures {attack!r}")


def net_name(run: Job) -> str:
    """A training job's net as tables name it, its model's description, e.g.
    'RBFI(512^, 512v, 512^, 10v)'."""
    return ModelConfig.from_json(run.payload["train"]["model"]).describe()
