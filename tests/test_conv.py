"""RBFIConv2d and its functional twin against the dense RBFI layer applied to every patch by
brute force (Python loops over output positions), gradients included."""

import pytest
import torch

from rbfi.nn import RBFI, RBFIConv2d, attach_projection, project_, rbfi_conv2d, set_pseudogradient


def patch_of(x, oy, ox, kernel, stride, padding, pad_value):
    """The patch of output (oy, ox) as (B, n) and the flat window indices it covers: with
    pad_value None only the pixels inside the image, else every pixel, padded ones = pad_value."""
    B, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    values, index = [], []
    for c in range(C):
        for dy in range(kh):
            for dx in range(kw):
                r, q = oy * sh - ph + dy, ox * sw - pw + dx
                inside = 0 <= r < H and 0 <= q < W
                if inside:
                    values.append(x[:, c, r, q])
                elif pad_value is not None:
                    values.append(torch.full((B,), pad_value, dtype=x.dtype))
                else:
                    continue
                index.append(c * kh * kw + dy * kw + dx)
    return torch.stack(values, dim=1), index


def brute_force(layer: RBFIConv2d, x: torch.Tensor) -> torch.Tensor:
    """A dense RBFI layer (sharing the conv's w, u, is_or: gradients reach them) on every patch."""
    B, _, H, W = x.shape
    Ho, Wo = layer.output_size(H, W)
    out = [[None] * Wo for _ in range(Ho)]
    for oy in range(Ho):
        for ox in range(Wo):
            patch, index = patch_of(
                x, oy, ox, layer.kernel_size, layer.stride, layer.padding, layer.pad_value
            )
            dense = RBFI(len(index), layer.out_features, norm=layer.norm, dtype=x.dtype)
            dense.backend, dense.pseudogradient = layer.backend, layer.pseudogradient
            dense.is_or = layer.is_or
            del dense._parameters["w"], dense._parameters["u"]  # the conv's, as plain tensors
            dense.w, dense.u = layer.w[:, index], layer.u[:, index]
            out[oy][ox] = dense(patch)
    return torch.stack([torch.stack(row, dim=-1) for row in out], dim=-2)


CASES = [
    # in_ch, out, kernel, stride, padding, (H, W)
    (1, 4, 3, 1, 0, (6, 5)),
    (2, 3, 3, 2, 1, (7, 6)),
    (2, 5, 2, 1, 1, (5, 5)),
    (3, 2, (3, 2), (1, 2), (2, 1), (6, 7)),
    (1, 3, 4, 3, 2, (9, 8)),
    (2, 2, 5, 2, 0, (5, 9)),
]


@pytest.mark.parametrize("kind", ["and", "or", "mixed"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("pad_value", [None, 0.0, 0.7])
def test_equals_the_dense_layer_on_every_patch(kind, case, pad_value):
    c_in, c_out, k, s, p, (H, W) = case
    torch.manual_seed(hash((kind, case, pad_value)) % 1000)
    layer = RBFIConv2d(c_in, c_out, k, s, p, kind, pad_value=pad_value)
    x = torch.rand(3, c_in, H, W)
    y = layer(x)
    expected = brute_force(layer, x)
    assert y.shape == expected.shape == (3, c_out, *layer.output_size(H, W))
    torch.testing.assert_close(y, expected, rtol=0, atol=0)  # the same float ops


@pytest.mark.parametrize("backend", ["reference", "chunked", "cpu"])
@pytest.mark.parametrize("norm", ["inf", "l2"])
def test_every_backend_and_norm_equals_the_brute_force(backend, norm):
    torch.manual_seed(4)
    layer = RBFIConv2d(2, 6, 3, 2, 1, "mixed", norm=norm, backend=backend)
    x = torch.rand(2, 2, 8, 7)
    torch.testing.assert_close(layer(x), brute_force(layer, x), rtol=1e-6, atol=1e-6)


def _grads(fn, layer, x):
    layer.zero_grad()
    x = x.clone().requires_grad_(True)
    y = fn(layer, x)
    weights = torch.linspace(-1, 1, y.numel()).reshape(y.shape)
    (y * weights).sum().backward()
    return x.grad, layer.w.grad.clone(), layer.u.grad.clone()


@pytest.mark.parametrize("pseudogradient", [True, False])
@pytest.mark.parametrize("case", CASES[:4])
@pytest.mark.parametrize("pad_value", [None, 0.0])
def test_gradients_equal_the_brute_force_ones(pseudogradient, case, pad_value):
    c_in, c_out, k, s, p, (H, W) = case
    torch.manual_seed(7)
    layer = RBFIConv2d(c_in, c_out, k, s, p, "mixed", pad_value=pad_value)
    set_pseudogradient(layer, pseudogradient)
    x = torch.rand(2, c_in, H, W)
    ours = _grads(lambda m, v: m(v), layer, x)
    theirs = _grads(brute_force, layer, x)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert ours[1].abs().sum() > 0 and ours[0].abs().sum() > 0


@pytest.mark.parametrize("norm", ["inf", "l2"])
@pytest.mark.parametrize("padding, pad_value", [(0, None), (1, None), (2, 0.3)])
def test_true_gradients_match_finite_differences_in_float64(norm, padding, pad_value):
    torch.manual_seed(2)
    layer = RBFIConv2d(2, 3, 3, 2, padding, "mixed", norm=norm, dtype=torch.float64)
    x = torch.rand(2, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    w = layer.w.detach().clone().requires_grad_()
    u = layer.u.detach().clone().requires_grad_()

    def f(x, w, u):
        return rbfi_conv2d(
            x, w, u, layer.is_or, 3, 2, padding, pad_value=pad_value, norm=norm,
            pseudogradient=False,
        )  # fmt: skip

    assert torch.autograd.gradcheck(f, (x, w, u), eps=1e-6, atol=1e-7)


def test_the_pseudogradient_switch_and_projection_cover_conv_layers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        RBFIConv2d(1, 4, 3, 2, 1, u_bounds=(0.01, 3.0)), torch.nn.Flatten(), RBFI(64, 2, "or")
    )
    x = torch.rand(5, 1, 8, 8)
    grads = []
    for flag in (True, False):
        set_pseudogradient(model, flag)
        assert model[0].pseudogradient is flag
        grads.append(_grads(lambda m, v: m(v), model[0], x)[1])
    assert not torch.allclose(grads[0], grads[1])
    opt = torch.optim.SGD(model.parameters(), lr=1e4)
    attach_projection(opt, model)
    for _ in range(2):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    u, w = model[0].u.detach(), model[0].w.detach()
    assert u.min() >= 0.01 - 1e-7 and u.max() <= 3.0 + 1e-7 and w.min() >= 0 and w.max() <= 1
    assert ((u == 0.01) | (u == 3.0)).any()
    with torch.no_grad():
        model[0].u.fill_(9.0)
    project_(model)
    assert torch.all(model[0].u == 3.0)


def test_parameters_are_those_of_the_dense_layer_on_the_window():
    torch.manual_seed(0)
    layer = RBFIConv2d(3, 40, (5, 4), 2, 1, "mixed", u_bounds=(0.1, 2.0), w_bounds=(0.2, 0.9))
    assert isinstance(layer, RBFI)
    assert layer.w.shape == layer.u.shape == (40, 3 * 5 * 4)
    assert layer.in_features == 60 and layer.out_features == 40
    assert layer.u.min() >= 0.2 and layer.u.max() <= 0.7  # the author's init, inside bounds
    assert layer.w.min() >= 0.2 and layer.w.max() <= 0.9
    assert 0 < layer.is_or.sum() < 40 and layer.is_or.shape == (40,)
    text = repr(layer)
    assert "kernel_size=(5, 4)" in text and "stride=(2, 2)" in text and "padding=(1, 1)" in text
    assert set(layer.state_dict()) == {"w", "u", "is_or", "u_bounds", "w_bounds"}


@pytest.mark.parametrize(
    "build, shape, fragment",
    [
        (lambda: RBFIConv2d(2, 3, 3), (4, 2, 5), r"\(B, 2, H, W\)"),
        (lambda: RBFIConv2d(2, 3, 3), (4, 18), r"\(B, 2, H, W\)"),
        (lambda: RBFIConv2d(2, 3, 3), (4, 1, 5, 5), "2 input channel"),
        (lambda: RBFIConv2d(1, 3, 5), (4, 1, 4, 9), "smaller than the kernel"),
        (lambda: RBFIConv2d(1, 3, 5, padding=1), (4, 1, 9, 2), "smaller than the kernel"),
    ],
)
def test_bad_input_shapes_raise_one_line(build, shape, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        build()(torch.rand(*shape))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": (3, 3, 3)}, "kernel_size"),
        ({"kernel_size": 3, "stride": 0}, "stride"),
        ({"kernel_size": 3, "padding": -1}, "padding"),
        ({"kernel_size": 3, "padding": 3}, "smaller than the kernel"),
        ({"kernel_size": 3, "kind": "xor"}, "kind"),
        ({"kernel_size": 3, "pad_value": float("nan")}, "pad_value"),
    ],
)
def test_bad_arguments_raise(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        RBFIConv2d(2, 3, **kwargs)


def test_no_tensor_of_patches_times_units_times_window_is_made(monkeypatch):
    """The dense op sees (B*P, window) patches and (O, window) parameters, never more; for the C
    kernel the window is padded with zero columns to its SIMD width (no scalar tail)."""
    import rbfi.nn.functional as F
    from rbfi.ops import vector_width

    seen = []
    real = F.scaled_sqdist_max

    def spy(x, w, u, **kwargs):
        seen.append((tuple(x.shape), tuple(w.shape), tuple(u.shape)))
        return real(x, w, u, **kwargs)

    monkeypatch.setattr(F, "scaled_sqdist_max", spy)
    x = torch.rand(4, 2, 7, 7)
    for backend in ("chunked", "auto"):
        layer = RBFIConv2d(2, 6, 3, 1, 0, backend=backend)
        layer(x)
        width = vector_width(backend, (x, layer.w, layer.u))
        n = -(-18 // width) * width
        assert seen.pop() == ((4 * 25, n), (6, n), (6, n))
    assert vector_width("chunked", (x,)) == 1
