import pytest
import torch

from rbfi.models import build_model, describe, model_from_config, parse_geometry


def test_paper_geometry():
    model = build_model("rbfi", "512,512,512,10", "^v^v")
    kinds = [layer.kind for layer in model.body]
    assert kinds == ["and", "or", "and", "or"]
    assert [layer.out_features for layer in model.body] == [512, 512, 512, 10]
    assert describe(model) == "RBFI(512^, 512v, 512^, 10v)"


def test_mixed_symbol_and_default_geometry():
    assert parse_geometry("*^v", 3) == ("mixed", "and", "or")
    assert build_model("rbfi", "8,10").config["geometry"] == "^v"


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
    assert "(B, 784)" in str(info.value) and str(tuple(bad_shape)) in str(info.value)


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
    clone = model_from_config(model.config)
    clone.load_state_dict(model.state_dict())
    x = torch.rand(4, 784)
    torch.testing.assert_close(clone(x), model(x))
    assert clone.body[0].u_bounds.tolist() == pytest.approx([0.01, 10.0])


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("cnn")
    with pytest.raises(ValueError, match="geometry applies"):
        build_model("relu", "16,10", "^v")
