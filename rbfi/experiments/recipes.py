"""The nets of the studies beyond the paper as plain settings: a :class:`Recipe` per net (its
kind, layer spec, geometry, epochs and every other training setting), gathered per study
(:class:`ConvStudy`) in a :class:`~rbfi.experiments.profiles.Profile`, so that changing how a
net is trained is changing one value here (or one ``replace`` in a profile).

The conv study (``rbfi/experiments/studies/conv.py``, docs/conv.md): RBFI CNNs trained normally
and certified-trained for eps 0.1 and 0.3, against ReLU CNNs of the same spec trained
normally, with Madry's PGD, with TRADES and with IBP for 0.1 and 0.3. The ReLU recipes are
those of ``paper/baselines.py`` (docs/baselines.md): Madry / TRADES at eps 0.3 ramped from 0
over half the steps, Adam 1e-3 with cosine decay; IBP with 5% clean steps, eps and the
worst-case weight (kappa 1 -> 0.5) ramped over 60% of the steps, Adam 5e-4 cut by 10 at 75%
and 90% of the steps, at eps_train 0.2 for test eps 0.1 and 0.4 for 0.3 (Gowal et al. 2018's
choice for their CNNs; on the 512^3 MLP eps_train 0.4 with a 50% ramp and Adam 1e-3
collapsed). The RBFI recipes are starting points (``--certified-eps 0.35`` is the MLP's,
docs/certification.md) with the worst-case loss's final weight at 0.8 for the 0.3 net: the
best of the recipe search (results/conv-recipes/: AdaDelta as the MLP's; Adam failed to
train, and eps 0.3, wider or deeper nets and other geometries did no better).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rbfi.models import ModelConfig
from rbfi.training import TrainConfig

# settings a recipe may not set: the profile's (data) and the recipe's own fields
PROFILE_SETTINGS = ("model", "epochs", "train_limit", "test_limit", "pixel_scale")
MODEL_SETTINGS = ("u_bounds", "w_bounds")  # of the model, besides layers and geometry
CONV_SPEC = "c16k5s2,c32k4s2,512,10"
CONV_GEOMETRY = "^v^v"


def _frozen(value):
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class Recipe:
    """How one net is trained: ``arch`` ("rbfi", "relu", ...), ``epochs``, ``layers`` (a layer
    spec, e.g. "c16k5s2,c32k4s2,512,10"; None: the study's), ``geometry`` (rbfi / rbf nets;
    None: the study's) and ``settings``: every other setting of
    :class:`~rbfi.training.TrainConfig` (and the model's ``u_bounds`` / ``w_bounds``) as sorted
    (name, value) pairs. Build it with :func:`recipe`, which checks the names."""

    arch: str
    epochs: int
    layers: str | None = None
    geometry: str | None = None
    settings: tuple[tuple[str, object], ...] = ()

    def train(self) -> dict:
        """The training settings (TrainConfig keywords)."""
        return {k: v for k, v in self.settings if k not in MODEL_SETTINGS}

    def model(self) -> dict:
        """The model settings besides layers and geometry (ModelConfig keywords)."""
        return {k: v for k, v in self.settings if k in MODEL_SETTINGS}

    def but(self, **changes) -> Recipe:
        """This recipe with ``changes`` (its fields, or settings; a setting given None is
        dropped, i.e. back to TrainConfig's default)."""
        own = {k: changes.pop(k) for k in list(changes) if k in Recipe.__dataclass_fields__}
        settings = {**dict(self.settings), **changes}
        settings = {k: v for k, v in settings.items() if v is not None}
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields.update(own)
        fields.pop("settings")
        return recipe(**fields, **settings)


def recipe(
    arch: str, epochs: int, layers: str | None = None, geometry: str | None = None, **settings
) -> Recipe:
    """A :class:`Recipe`; ``settings`` are TrainConfig fields (or ``u_bounds`` /
    ``w_bounds``), e.g. ``recipe("rbfi", 20, certified_eps=0.35, certified_ramp=0.6)``;
    ValueError for a name that is not one, or one the profile sets (data, epochs)."""
    known = set(TrainConfig.__dataclass_fields__) | set(MODEL_SETTINGS)
    bad = sorted(set(settings) - known | set(settings) & set(PROFILE_SETTINGS))
    if bad:
        raise ValueError(
            f"a recipe cannot set {', '.join(bad)} (TrainConfig settings other than "
            f"{', '.join(PROFILE_SETTINGS)}, and {', '.join(MODEL_SETTINGS)})"
        )
    pairs = tuple(sorted((k, _frozen(v)) for k, v in settings.items()))
    return Recipe(arch, epochs, layers, geometry, pairs)


@dataclass(frozen=True)
class ConvStudy:
    """The conv item's nets under one profile: the layer spec and geometry they share (a recipe
    may set its own), and one recipe per net. The RBFI MLPs it compares with are the paper's
    items' (Table 1's net, the baselines item's certified net), not set here."""

    rbfi: Recipe  # RBFI CNN trained normally
    rbfi_cert_01: Recipe  # RBFI CNN certified-trained for eps 0.1
    rbfi_cert_03: Recipe  # ... for eps 0.3
    relu: Recipe  # ReLU CNN of the same spec trained normally
    relu_madry: Recipe
    relu_trades: Recipe
    relu_ibp_01: Recipe  # ReLU CNN IBP-trained for eps 0.1
    relu_ibp_03: Recipe  # ... for eps 0.3
    layers: str = CONV_SPEC
    geometry: str = CONV_GEOMETRY

    def recipes(self) -> dict[str, Recipe]:
        """Field name -> recipe, in the order of the fields."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), Recipe)
        }

    def model(self, name: str) -> ModelConfig:
        """The model of the net ``name`` (a field), with the study's spec and geometry where
        its recipe has none."""
        r = getattr(self, name)
        geometry = (r.geometry or self.geometry) if r.arch in ("rbfi", "rbf") else None
        return ModelConfig(r.arch, r.layers or self.layers, geometry, **r.model())


def adversarial(regime: str, epochs: int, steps: int, batch: int) -> Recipe:
    """A ReLU net with Madry's PGD ("madry") or TRADES at eps 0.3: the one definition of the
    baselines' adversarial recipes (the baselines item's MLPs, the conv study's CNNs)."""
    extra = {"trades_beta": 6.0} if regime == "trades" else {}
    return recipe(
        "relu",
        epochs,
        batch_size=batch,
        optimizer="adam",
        lr=1e-3,
        lr_schedule="cosine",
        adversarial=regime,
        adv_eps=0.3,
        adv_eps_ramp=0.5,
        adv_steps=steps,
        **extra,
    )


def ibp(eps_train: float, epochs: int) -> Recipe:
    """A ReLU net with IBP at ``eps_train``: the one definition of the baselines' IBP recipe
    (the baselines item's MLP, the conv study's CNNs)."""
    return recipe(
        "relu",
        epochs,
        optimizer="adam",
        lr=5e-4,
        lr_schedule="step",
        lr_decay_at=(0.75, 0.9),
        lr_decay_factor=0.1,
        certified_eps=eps_train,
        certified_warmup=0.05,
        certified_ramp=0.6,
        certified_weight=0.5,
        certified_loss="cross_entropy",
    )


def conv_study(
    *,
    epochs: int,
    cert_epochs: int,
    baseline_epochs: int,
    baseline_steps: int,
    baseline_batch: int,
    ibp_epochs: int,
    layers: str = CONV_SPEC,
    geometry: str = CONV_GEOMETRY,
) -> ConvStudy:
    """The conv study's recipes at a profile's size."""
    return ConvStudy(
        rbfi=recipe("rbfi", epochs),
        rbfi_cert_01=recipe("rbfi", cert_epochs, certified_eps=0.15),
        rbfi_cert_03=recipe("rbfi", cert_epochs, certified_eps=0.35, certified_weight=0.8),
        relu=recipe("relu", epochs),
        relu_madry=adversarial("madry", baseline_epochs, baseline_steps, baseline_batch),
        relu_trades=adversarial("trades", baseline_epochs, baseline_steps, baseline_batch),
        relu_ibp_01=ibp(0.2, ibp_epochs),
        relu_ibp_03=ibp(0.4, ibp_epochs),
        layers=layers,
        geometry=geometry,
    )


# the standard and paper profiles' (the paper has no conv item: the `paper` profile trains the
# standard profile's nets and attacks them with its own strong suite); by the cost model, the
# standard profile's new jobs take 2.4 h on 2 cores: 0.9 h of training, 1.5 h of strong suite
STANDARD_CONV = conv_study(
    epochs=30,
    cert_epochs=30,
    baseline_epochs=10,
    baseline_steps=10,
    baseline_batch=250,
    ibp_epochs=60,
)
QUICK_CONV = conv_study(
    epochs=3, cert_epochs=5, baseline_epochs=3, baseline_steps=10, baseline_batch=250, ibp_epochs=5
)
SMOKE_CONV = conv_study(
    epochs=1,
    cert_epochs=1,
    baseline_epochs=1,
    baseline_steps=2,
    baseline_batch=100,
    ibp_epochs=1,
    layers="c4k5s3,16,10",
    geometry="^v^",
)
