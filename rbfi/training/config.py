"""Everything that defines a training run, declared once (saved in the checkpoint; the
``rbfi train`` options are generated from these fields)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from rbfi.data import (
    DEFAULT_PIXEL_SCALE,
    LEGACY_PIXEL_SCALE,
    data_dir_option,
    get_dataset,
    pixel_scale_option,
)
from rbfi.models.config import LINF, LINF_GROUP, ModelConfig
from rbfi.nn.losses import LOSSES
from rbfi.options import (
    Choice,
    Device,
    Float,
    FloatList,
    Int,
    Pair,
    PositiveFloat,
    PositiveInt,
    Text,
    check_fields,
    option,
    to_json,
)
from rbfi.training.schedule import SCHEDULES

DEFAULT_LR = {  # AdaDelta: the author's code
    "rbfi": 5.0,
    "rbf": 5.0,
    "relu": 1.0,
    "sigmoid": 1.0,
    LINF: 1.0,
}
ADAM_LR = 1e-3
# l_inf-distance nets: Adam as in Zhang et al. 2022 (lr 0.03, betas (0.9, 0.99), eps 1e-10,
# cosine decay); see docs/linf-dist.md
LINF_ADAM = {"lr": 0.03, "beta2": 0.99, "eps": 1e-10}
OPTIMIZERS = ("adadelta", "adam")
ADVERSARIAL = ("none", "fgsm", "ifgsm", "pgd", "madry", "trades")
DEFAULT_ADV_STEPS = {"fgsm": 1, "ifgsm": 10, "pgd": 100, "madry": 40, "trades": 40}
CERTIFIED_LOSSES = ("cross_entropy", "hinge", "square")  # and the linf-dist recipe's below
CERTIFIED_REDUCTIONS = ("max", "mean")
# --certified-recipe: "ibp" (the default; the recipe study's best, docs/certification.md) takes
# the --certified-loss of the worst-case margins; "linf-dist" is the l_inf-dist nets' objective
# (Zhang et al. 2022) on RBFI's margins, which the study rejected: the clipped hinge plus a
# decaying clean cross-entropy, with these settings (fields kept off the command line; settable
# from Python, and saved in every checkpoint):
CERTIFIED_RECIPES = {
    "ibp": {},
    "linf-dist": {
        "certified_loss": "clipped_hinge",
        "certified_margin": 0.1,
        "certified_reduce": "max",
        "certified_ce": 0.05,
        "certified_ce_end": 0.0002,
    },
}
MAX_SEED = 2**63 - 1
ADV = "adversarial training (Sec. 6.4)"
REG = "regularisation (Sec. 6.7)"
CERT = "certified training (interval bounds)"
LR = "learning-rate schedule"


@dataclass
class TrainConfig:
    """A training run: the model (and the dataset it reads), the optimiser (AdaDelta, the
    paper's), data and seed."""

    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = option(10, "training epochs", kind=PositiveInt())
    batch_size: int = option(100, "examples per optimiser step", kind=PositiveInt())
    optimizer: str | None = option(
        None,
        "optimiser (default: adadelta, the paper's; adam for linf-dist)",
        kind=Choice(OPTIMIZERS),
    )
    lr: float | None = option(
        None,
        "learning rate (default: AdaDelta 5 for rbfi/rbf, 1 otherwise; Adam 0.001, 0.03 for "
        "linf-dist)",
        kind=PositiveFloat(),
    )
    rho: float = option(0.9, "AdaDelta decay", kind=Float(0.0, 1.0, open_max=True))
    adam_beta2: float | None = option(
        None,
        "Adam's beta2 (default: torch's 0.999; 0.99 for linf-dist)",
        kind=Float(0.0, 1.0, open_max=True),
    )
    adam_eps: float | None = option(
        None, "Adam's eps (default: torch's 1e-8; 1e-10 for linf-dist)", kind=PositiveFloat()
    )
    lr_schedule: str | None = option(
        None,
        "learning rate over the steps: constant (default), cosine (to 0 at the end; default "
        "for linf-dist) or step (x --lr-decay-factor at each --lr-decay-at)",
        kind=Choice(SCHEDULES),
        group=LR,
    )
    lr_warmup: float = option(
        0.0,
        "fraction of the steps, W of them, over which the lr rises linearly (lr (t+1)/W at step t)",
        kind=Float(0.0, 1.0, open_max=True),
        group=LR,
    )
    lr_decay_at: tuple[float, ...] = option(
        (0.5, 0.75),
        "step schedule: fractions of training where the lr is multiplied by the factor",
        kind=FloatList(0.0, 1.0),
        group=LR,
    )
    lr_decay_factor: float = option(
        0.1, "step schedule: the factor", kind=Float(0.0, 1.0, open_min=True), group=LR
    )
    loss: str | None = option(
        None,
        "training loss (default: square for rbfi/rbf/sigmoid, cross_entropy for relu)",
        kind=Choice(LOSSES),
    )
    seed: int = option(0, "seed of Python, NumPy and PyTorch", kind=Int(0, MAX_SEED))
    pseudogradient: bool = option(
        True,
        "train without pseudogradients (true gradients)",
        flag="--true-gradients",
        invert=True,
    )
    train_limit: int | None = option(
        None, "use only the first N training images", kind=PositiveInt()
    )
    test_limit: int | None = option(  # --limit of every command; --test-limit: its old name
        None,
        "first N test images, evaluated after every epoch (default: all)",
        kind=PositiveInt().shown_as("N"),
        flag="--limit",
        aliases=("--test-limit",),
    )
    data_dir: str | None = data_dir_option()
    pixel_scale: int = pixel_scale_option(DEFAULT_PIXEL_SCALE)
    device: str = option("cpu", "torch device (cpu, cuda, cuda:1, ...)", kind=Device())
    init_from: str | None = option(
        None,
        "start from the weights of this run directory or zoo:NAME (same model), not at random",
        kind=Text(),
    )
    adversarial: str = option(
        "none",
        "train on adversarial examples: fgsm / ifgsm / pgd feed x and x' (the paper's), "
        "madry feeds x' only (sign PGD), trades: L(f(x), y) + beta KL(f(x) || f(x'))",
        kind=Choice(ADVERSARIAL),
        group=ADV,
    )
    adv_eps: float = option(0.3, "eps of the training attack", kind=Float(0.0, 1.0), group=ADV)
    adv_steps: int | None = option(
        None,
        "steps of the training attack (default: ifgsm 10, pgd 100, madry 40)",
        kind=PositiveInt(),
        group=ADV,
    )
    adv_gradient: str = option(
        "true",
        "gradients the training attack follows on RBFI layers (true or pseudo)",
        kind=Choice(("true", "pseudo")),
        group=ADV,
    )
    adv_eps_ramp: float = option(
        0.0,
        "fraction of the steps over which the training eps grows linearly from 0 to adv_eps",
        kind=Float(0.0, 1.0),
        group=ADV,
    )
    adv_alpha: float | None = option(
        None,
        "step size of the training attack (madry, trades; default 2.5 x current eps / steps; "
        "Madry et al.: 0.01)",
        kind=PositiveFloat(),
        group=ADV,
    )
    trades_beta: float = option(
        6.0, "TRADES: weight of the KL term (Zhang et al. 2019)", kind=Float(min=0.0), group=ADV
    )
    reg_lambda: float = option(
        0.0,
        "add lambda x the network's sensitivity bound (eq. 7 / 8) to the loss",
        kind=Float(min=0.0),
        group=REG,
    )
    certified_eps: float | None = option(
        None,
        "train for certified robustness at this eps (the end of the eps ramp)",
        kind=Float(0.0, 1.0, open_min=True),
        group=CERT,
    )
    certified_warmup: float = option(
        0.05,
        "fraction of the steps trained clean before the ramp",
        kind=Float(0.0, 1.0),
        group=CERT,
    )
    certified_ramp: float = option(
        0.5,
        "fraction of the steps over which eps and the weight ramp up linearly",
        kind=Float(0.0, 1.0),
        group=CERT,
    )
    certified_weight: float = option(
        0.5,
        "final weight of the worst-case loss (the clean loss gets 1 - weight)",
        kind=Float(0.0, 1.0),
        group=CERT,
    )
    certified_recipe: str = option(
        "ibp",
        "ibp: (1 - w) clean loss + w --certified-loss of the worst-case margins; linf-dist: the "
        "l_inf-dist nets' clipped hinge + a decaying clean cross-entropy (rejected by the "
        "recipe study, docs/certification.md)",
        kind=Choice(tuple(CERTIFIED_RECIPES)),
        group=CERT,
    )
    certified_loss: str = option(
        "cross_entropy",
        "loss of the worst-case margins (the ibp recipe's)",
        kind=Choice(CERTIFIED_LOSSES, hidden=("clipped_hinge",)),
        group=CERT,
    )
    certified_gradient: str = option(
        "true",
        "gradients through the interval bounds of RBFI layers: true (measured better) or "
        "pseudo (eq. 9, 11)",
        kind=Choice(("pseudo", "true")),
        group=CERT,
    )
    certified_scale: float | None = option(
        None,
        "cross_entropy: logits = -scale x margin bounds (default 10 for rbfi/rbf nets, 1 "
        "otherwise); hinge: the margin wanted",
        kind=PositiveFloat(),
        group=CERT,
    )
    # the linf-dist recipe's settings (CERTIFIED_RECIPES), off the command line
    certified_margin: float = option(
        0.1,
        "clipped_hinge: the target certified margin theta; loss clip((theta - m) / width, "
        "0, 1) per class",
        kind=Float(0.0, 1.0),
        group=CERT,
        cli=False,
    )
    certified_hinge_width: float | None = option(
        None,
        "clipped_hinge: margins below theta - width get loss 1 and no gradient (default "
        "2 x certified_eps, as l_inf-dist nets tie it to the training eps)",
        kind=PositiveFloat(),
        group=CERT,
        cli=False,
    )
    certified_reduce: str = option(
        "max",
        "clipped_hinge: reduce the per-class losses by their max or their mean over c != y",
        kind=Choice(CERTIFIED_REDUCTIONS),
        group=CERT,
        cli=False,
    )
    certified_ce: float = option(
        0.0,
        "weight of an extra cross-entropy of the clean scores (logits 10 x s) at the first "
        "step; it decays geometrically to certified_ce_end at the last (0: none)",
        kind=Float(min=0.0),
        group=CERT,
        cli=False,
    )
    certified_ce_end: float | None = option(
        None,
        "weight of the extra cross-entropy at the last step (default: constant)",
        kind=PositiveFloat(),
        group=CERT,
        cli=False,
    )
    linf_eps: float = option(
        0.45,
        "training eps: the hinge asks for a clean margin of 2 eps (in l_inf-distance units) "
        "on the 1-Lipschitz scores (the papers: 0.45 for eps 0.3, 0.3 for eps 0.1)",
        kind=Float(0.0, 1.0, open_min=True),
        group=LINF_GROUP,
    )
    linf_hinge_mix: float = option(
        1.0,
        "the hinge: this weight on its max over the classes c != y, the rest on their mean "
        "(v2: 1; v1: 0.75)",
        kind=Float(0.0, 1.0),
        group=LINF_GROUP,
    )
    linf_hinge_clip: bool = option(
        True,
        "v1's hinge: not clipped at 1, so misclassified examples keep their gradient (v2 "
        "clips it; use with --linf-ce 0 --linf-hinge-mix 0.75 for v1's loss)",
        flag="--linf-no-clip",
        invert=True,
        group=LINF_GROUP,
    )
    linf_ce: float = option(
        0.05,
        "weight of the cross-entropy of the logits at the start; it decays geometrically "
        "with p's annealing to --linf-ce-end (v2: 0.05 -> 0.0002)",
        kind=Float(min=0.0),
        group=LINF_GROUP,
    )
    linf_ce_end: float = option(
        0.0002,
        "weight of the cross-entropy once p is annealed",
        kind=PositiveFloat(),
        group=LINF_GROUP,
    )
    linf_p_start: float = option(
        8.0, "the l_p-relaxation's p at the start", kind=Float(min=1.0), group=LINF_GROUP
    )
    linf_p_end: float = option(
        1000.0,
        "p at the end of the annealing; from then on p = inf when it is >= 100 (as the v2 code)",
        kind=Float(min=1.0),
        group=LINF_GROUP,
    )
    linf_p_anneal: tuple[float, float] = option(
        (25 / 450, 400 / 450),
        "fractions of the steps between which p grows geometrically from --linf-p-start to "
        "--linf-p-end (the v2 MNIST runs: epochs 25 and 400 of 450)",
        kind=Pair(min=0.0),
        group=LINF_GROUP,
    )
    linf_scale_lr: float = option(
        0.2,
        "learning rate of the logit scale relative to --lr (v2: 0.006 / 0.03)",
        kind=PositiveFloat(),
        group=LINF_GROUP,
    )
    linf_shift: int = option(
        1,
        "augmentation: shift each image by up to this many pixels, edges repeated (v2: "
        "RandomCrop(28, padding=1, edge); 0: off)",
        kind=Int(0, 4),
        group=LINF_GROUP,
    )

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        check_fields(self)
        self._apply_recipe()
        linf = self.model.arch == LINF
        if self.optimizer is None:
            self.optimizer = "adam" if linf else "adadelta"
        if self.lr_schedule is None:
            self.lr_schedule = "cosine" if linf else "constant"
        if linf and self.optimizer == "adam":
            self.lr = LINF_ADAM["lr"] if self.lr is None else self.lr
            self.adam_beta2 = LINF_ADAM["beta2"] if self.adam_beta2 is None else self.adam_beta2
            self.adam_eps = LINF_ADAM["eps"] if self.adam_eps is None else self.adam_eps
        if self.lr is None:
            self.lr = ADAM_LR if self.optimizer == "adam" else DEFAULT_LR[self.model.arch]
        if self.linf_p_anneal[1] > 1.0:
            raise ValueError(f"linf_p_anneal must lie in [0, 1], got {self.linf_p_anneal}")
        if linf and (
            self.adversarial != "none" or self.certified_eps is not None or self.reg_lambda > 0
        ):
            raise ValueError(
                "linf-dist nets train with their own objective (the --linf-* options); "
                "--adversarial, --certified-eps and --reg-lambda do not apply to them"
            )
        if self.adv_steps is None and self.adversarial != "none":
            self.adv_steps = DEFAULT_ADV_STEPS[self.adversarial]
        if self.certified_scale is None and self.certified_eps is not None:
            self.certified_scale = 10.0 if self.model.arch in ("rbfi", "rbf") else 1.0
        if self.certified_hinge_width is None and self.certified_eps is not None:
            self.certified_hinge_width = 2.0 * self.certified_eps
        if self.certified_ce_end is None and self.certified_ce > 0:
            self.certified_ce_end = self.certified_ce
        if self.adversarial != "none" and self.certified_eps is not None:
            raise ValueError("choose adversarial training or certified training, not both")
        if self.certified_warmup + self.certified_ramp > 1.0:
            raise ValueError(
                f"certified_warmup + certified_ramp must be <= 1, got "
                f"{self.certified_warmup} + {self.certified_ramp}"
            )
        if self.loss is None:
            self.loss = self.model.loss
        if self.model.dataset is not None:  # None: a net on plain vectors (no data to train on)
            dataset = get_dataset(self.model.dataset)
            dataset.check_pixel_scale(self.pixel_scale)
            if self.model.layers[-1] != dataset.n_classes:
                raise ValueError(
                    f"the last layer must have {dataset.n_classes} units ({dataset.title} "
                    f"classes), got {self.model.layers[-1]}"
                )

    def _apply_recipe(self) -> None:
        """Fill the settings of ``certified_recipe`` that still hold their defaults."""
        recipe = CERTIFIED_RECIPES[self.certified_recipe]
        if recipe and self.certified_eps is None:
            raise ValueError(f"certified_recipe {self.certified_recipe} needs certified_eps")
        if self.certified_loss == "clipped_hinge" and self.certified_recipe != "linf-dist":
            raise ValueError(
                "certified_loss clipped_hinge is the linf-dist recipe's loss: choose "
                "certified_recipe linf-dist (--certified-recipe linf-dist)"
            )
        defaults = {f.name: f.default for f in fields(self) if f.name in recipe}
        for name, value in recipe.items():
            if getattr(self, name) == defaults[name]:
                setattr(self, name, value)
        if recipe and self.certified_loss != recipe["certified_loss"]:
            raise ValueError(
                f"certified_recipe {self.certified_recipe} sets the loss "
                f"({recipe['certified_loss']}); certified_loss is the ibp recipe's"
            )

    def to_json(self) -> dict:
        out = to_json(self)
        out["model"] = self.model.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        """From :meth:`to_json`, or from the flat settings rbfi 0.1 saved (arch, layers, ...
        at the top level). Unknown keys are ignored; bad values raise ValueError; settings
        of MNIST nets without ``pixel_scale`` (saved before it existed) mean k / 256; without
        ``certified_recipe``, the linf-dist recipe when the loss was the clipped hinge (the
        knobs it now groups were options of their own) and ibp otherwise."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object of training settings, got {data!r}")
        data = dict(data)
        if "model" not in data and "arch" in data:  # rbfi 0.1
            model = {k: data.pop(k) for k in ModelConfig.__dataclass_fields__ if k in data}
            if model["arch"] not in ("rbfi", "rbf"):
                for key in ("geometry", "u_bounds", "w_bounds"):
                    model.pop(key, None)
            data["model"] = {k: v for k, v in model.items() if v is not None}
        if "model" not in data:
            raise ValueError("training settings without a model")
        if isinstance(data["model"], dict) and data["model"].get("dataset", "mnist") == "mnist":
            data.setdefault("pixel_scale", LEGACY_PIXEL_SCALE)  # saved before it existed
        if "certified_recipe" not in data:  # saved before it existed: the clipped hinge was
            hinge = data.get("certified_loss") == "clipped_hinge"  # set on its own
            data["certified_recipe"] = "linf-dist" if hinge else "ibp"
        model = ModelConfig.from_json(data.pop("model"))
        return cls(model=model, **{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
