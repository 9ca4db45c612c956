from pathlib import Path

import pytest
import torch

from rbfi.models import ModelConfig, build_model, describe, expected_state, parse_geometry


def test_paper_geometry():
    model = build_model("rbfi", "512,512,512,10", "^v^v")
    kinds = [layer.kind for layer in model.body]
    assert kinds == ["and", "or", "and", "or"]
    assert [layer.out_features for layer in model.body] == [512, 512, 512, 10]
    assert describe(model) == "RBFI(512^, 512v, 512^, 10v)"


def test_mixed_symbol_and_default_geometry():
    assert parse_geometry("*^v", 3) == ("mixed", "and", "or")
    assert build_model("rbfi", "8,10").config.geometry == "^v"


@pytest.mark.parametrize("geometry", ["^v", "^vx^", "", "^v^v^"])
def test_bad_geometry(geometry):
    with pytest.raises(ValueError, match="geometry"):
        build_model("rbfi", "16,16,16,10", geometry)


@pytest.mark.parametrize("arch", ["rbfi", "rbf", "relu", "sigmoid"])
def test_models_accept_flat_and_image_input(arch):
    model = build_model(arch, "16,10")
    x = torch.rand(3, 784)
    out = model(x)
    assert out.shape == (3, 10)
    torch.testing.assert_close(model(x.reshape(3, 1, 28, 28)), out)
    torch.testing.assert_close(model(x.reshape(3, 28, 28)), out)


@pytest.mark.parametrize("bad_shape", [(3, 783), (3, 2, 28, 28), (784,), (3, 1, 28, 27)])
def test_wrong_input_shape_names_both_shapes(bad_shape):
    model = build_model("relu", "16,10")
    with pytest.raises(ValueError) as info:
        model(torch.rand(*bad_shape))
    got = f"(B, {', '.join(map(str, bad_shape[1:]))})" if len(bad_shape) > 1 else "(784,)"
    assert str(info.value) == f"expected input of shape (B, 784) or (B, 1, 28, 28), got {got}"


def test_score_ranges_and_losses():
    x = torch.rand(5, 784)
    assert build_model("relu", "16,10").loss == "cross_entropy"
    for arch in ("rbfi", "sigmoid"):
        model = build_model(arch, "16,10")
        assert model.loss == "square"
        out = model(x)
        assert out.min() >= 0 and out.max() <= 1
    sigmoid = build_model("sigmoid", "16,16,10")
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in sigmoid.body) == 3  # after every layer


def test_config_round_trip_rebuilds_same_architecture():
    model = build_model("rbfi", "32,16,10", "*v^", u_bounds=(0.01, 10.0))
    clone = build_model(ModelConfig.from_json(model.config.to_json()))
    clone.load_state_dict(model.state_dict())
    x = torch.rand(4, 784)
    torch.testing.assert_close(clone(x), model(x))
    assert clone.body[0].u_bounds.tolist() == pytest.approx([0.01, 10.0])


def test_unknown_arch():
    with pytest.raises(ValueError, match="rbfi, rbf, relu, sigmoid"):
        build_model("cnn")
    with pytest.raises(ValueError, match="geometry applies"):
        build_model("relu", "16,10", "^v")


@pytest.mark.parametrize(
    "arch, layers, geometry",
    [
        ("rbfi", "8,6,10", "*v^"),
        ("rbf", "8,10", None),
        ("relu", "8,6,10", None),
        ("sigmoid", "8,10", None),
    ],
)
def test_expected_state_matches_the_built_model(arch, layers, geometry):
    """The shapes a checkpoint is checked against are those the model really has."""
    model = build_model(arch, layers, geometry)
    spec = expected_state(model.config)
    state = model.state_dict()
    assert set(spec) == set(state)
    for name, (shape, dtype) in spec.items():
        assert tuple(state[name].shape) == shape and state[name].dtype == dtype, name


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"arch": "rbfi", "layers": [8, 10], "geometry": "^x"}, "geometry"),
        ({"arch": "rbfi", "layers": ["8", 10]}, "layers[0]"),
        ({"arch": "rbfi", "layers": []}, "layers"),
        ({"arch": "rbfi", "layers": [8, 10], "u_bounds": [3, 1]}, "LOW <= HIGH"),
        ({"arch": "rbfi", "layers": [8, 10], "u_bounds": [-1, 1]}, "u_bounds[0]"),
        ({"arch": "relu", "layers": [8, 10], "geometry": "^v"}, "geometry applies"),
        ({"arch": "cnn", "layers": [8, 10]}, "arch"),
        ({"arch": "rbfi", "layers": [8, 10], "color": 1}, "unexpected key"),
        ({"layers": [8, 10]}, "missing 'arch'"),
    ],
)
def test_model_config_from_json_refuses_bad_entries(data, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        ModelConfig.from_json(data)


def test_rbfi_layer_takes_any_leading_dimensions_like_linear():
    from rbfi.nn import RBFI

    layer = RBFI(7, 5, "mixed")
    x = torch.rand(2, 3, 7)
    out = layer(x)
    assert out.shape == (2, 3, 5)
    torch.testing.assert_close(out.reshape(6, 5), layer(x.reshape(6, 7)))
    assert layer(torch.rand(7)).shape == (5,)
    lo, hi = layer.interval(x, x)
    torch.testing.assert_close(lo, out)
    torch.testing.assert_close(hi, out)


def test_u_init_defaults_by_unit_and_old_checkpoints_read_as_rbfi_init(tmp_path):
    """New RBF nets start with u of order 1 / sqrt(n), RBFI nets with U[0.2, 0.7]; a saved
    config leaves the old init out (so RBFI checkpoints are unchanged) and a config without
    it (every checkpoint before the setting) reads as the old init, RBF nets included; the
    init shapes the first layer's u as it says."""
    from rbfi.models import load_model, save_model
    from rbfi.nn.modules import rbf_u_scale

    rbf, rbfi = ModelConfig("rbf", (32, 10)), ModelConfig("rbfi", (32, 10))
    assert (rbf.u_init, rbfi.u_init) == ("sqrt-n", "rbfi")
    assert rbf.to_json()["u_init"] == "sqrt-n" and "u_init" not in rbfi.to_json()
    old = {k: v for k, v in rbf.to_json().items() if k != "u_init"}  # saved before issue 26
    assert ModelConfig.from_json(old).u_init == "rbfi"
    for config in (rbf, ModelConfig("rbf", (32, 10), u_init="rbfi"), rbfi):
        assert ModelConfig.from_json(config.to_json()) == config
    torch.manual_seed(0)
    u = build_model(rbf).body[0].u
    scale = rbf_u_scale(784)
    assert 0.2 * scale - 1e-7 <= u.min() and u.max() <= 0.7 * scale + 1e-7 and scale < 0.2
    u = build_model(ModelConfig("rbf", (32, 10), u_init="rbfi")).body[0].u
    assert u.min() >= 0.2 and u.max() <= 0.7
    model = build_model(rbf)
    save_model(tmp_path / "new", model)
    assert load_model(tmp_path / "new").config.u_init == "sqrt-n"
    for arch in ("relu", "linf-dist"):
        with pytest.raises(ValueError, match="u_init applies to rbfi and rbf"):
            ModelConfig(arch, (32, 10), u_init="rbfi")
    with pytest.raises(ValueError, match="expected one of rbfi, sqrt-n"):
        ModelConfig("rbf", (32, 10), u_init="he")


def test_u_init_gives_new_rbf_jobs_new_ids_and_keeps_every_rbfi_id():
    """Job ids: a new RBF net (u of order 1 / sqrt(n)) is a new job; an RBF net that asks for
    RBFI's init, and every RBFI net, has the id it had before the setting existed (computed
    here from the settings without the field, as they were saved then)."""
    import hashlib
    import json

    from rbfi.experiments.paper.common import net
    from rbfi.experiments.profiles import STANDARD
    from rbfi.experiments.spec import identity
    from rbfi.training import TrainConfig

    def old_id(job):  # the digest of the settings as saved before u_init existed
        train = dict(job.payload["train"])
        train["model"] = {k: v for k, v in train["model"].items() if k != "u_init"}
        payload = {"kind": "train", "payload": {"train": identity(TrainConfig, train)}}
        digest = hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]
        return job.id.rsplit("-", 1)[0] + "-" + digest

    new_rbf = net(STANDARD, "rbf", 0)
    assert new_rbf.payload["train"]["model"]["u_init"] == "sqrt-n"
    assert new_rbf.id != old_id(new_rbf)
    for job in (
        net(STANDARD, "rbf", 0, u_init="rbfi"),
        net(STANDARD, "rbf", 0, deep=True, epochs=STANDARD.deep_epochs, u_init="rbfi"),
        net(STANDARD, "rbfi", 0),
        net(STANDARD, "rbfi", 0, certified_eps=0.35),
    ):
        assert job.id == old_id(job), job.label
    # the committed standard reproduction holds the old-init RBF nets' and the RBFI nets' jobs
    # under these ids, and the Sec. 6.9 rerun's new-init RBF net under its own, side by side
    jobs = Path(__file__).resolve().parents[1] / "results" / "paper-standard" / "jobs"
    for job in (
        net(STANDARD, "rbf", 0, u_init="rbfi"),
        net(STANDARD, "rbf", 0, deep=True, epochs=STANDARD.deep_epochs, u_init="rbfi"),
        net(STANDARD, "rbfi", 0),
        net(STANDARD, "rbfi", 0, deep=True, epochs=STANDARD.deep_epochs),
    ):
        assert (jobs / job.id / "checkpoint.json").is_file(), job.label
    assert (jobs / new_rbf.id / "checkpoint.json").is_file(), new_rbf.label


def test_init_from_an_old_init_rbf_run_starts_from_its_weights(idx_dir, tmp_path):
    """--init-from copies weights, so how the source's u started does not matter: a new RBF
    net (u init sqrt-n) starts from an RBF run with RBFI's init (as every RBF run before issue
    26 was) and, trained with a negligible lr, ends with the source's weights."""
    from rbfi.cli import main
    from rbfi.models import load_model

    common = ["--layers", "8,10", "--epochs", "1", "--batch-size", "10", "--no-progress"]
    common += ["--data-dir", str(idx_dir), "--model", "rbf"]
    assert main(["train", *common, "--u-init", "rbfi", "--out", str(tmp_path / "old")]) == 0
    old = load_model(tmp_path / "old")
    assert old.config.u_init == "rbfi"
    argv = ["train", *common, "--init-from", str(tmp_path / "old"), "--out", str(tmp_path / "new")]
    assert main(argv + ["--lr", "1e-12"]) == 0
    new = load_model(tmp_path / "new")
    assert new.config.u_init == "sqrt-n"
    for name, tensor in old.state_dict().items():
        assert torch.allclose(new.state_dict()[name], tensor, atol=1e-6), name
