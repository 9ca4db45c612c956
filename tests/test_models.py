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
