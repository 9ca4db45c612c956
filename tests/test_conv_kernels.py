"""The CPU kernel's conv-shaped paths: the forward with lanes over units (small windows, few
units) against the register tiles and the reference, bit for bit, ties and odd sizes included;
the row-split backward against the reference and across thread counts."""

from __future__ import annotations

import ctypes

import pytest
import torch

from rbfi.ops import cpu, cpu_kernel_available
from rbfi.ops.reference import (
    scaled_sqdist_max_interval_reference,
    scaled_sqdist_max_reference,
)

pytestmark = pytest.mark.skipif(not cpu_kernel_available(), reason="no C compiler here")

TILES, UNITS = 1, 2
SHAPES = [(1, 1, 1), (7, 3, 5), (30, 16, 25), (19, 17, 33), (64, 40, 9), (9, 33, 200)]


def inputs(B, M, N, seed, ties=False):
    g = torch.Generator().manual_seed(seed)
    x, w = torch.rand(B, N, generator=g), torch.rand(M, N, generator=g)
    u = torch.rand(M, N, generator=g) * 3 - 0.5  # some negative scales too
    if ties:  # few distinct values: many equal s within a row, so the first arg-max matters
        x, w, u = (torch.round(t * 4) / 4 for t in (x, w, u))
    return x, w, u


def point(x, w, u, layout, threads=1):
    (B, N), M = x.shape, w.shape[0]
    z, idx = torch.empty(B, M), torch.empty(B, M, dtype=torch.int32)
    rc = cpu._lib().rbfi_forward_layout(
        *(t.data_ptr() for t in (x, w, u)), B, M, N, z.data_ptr(), idx.data_ptr(), threads, layout
    )
    assert rc == 0
    return z, idx


def box(lo, hi, w, u, layout, threads=1, want_idx=True):
    (B, N), M = lo.shape, w.shape[0]
    out = [torch.empty(B, M), torch.empty(B, M)]
    idx = [torch.empty(B, M, dtype=torch.int32) for _ in range(2)]
    ptrs = [t.data_ptr() for t in idx] if want_idx else [None, None]
    rc = cpu._lib().rbfi_interval_forward_layout(
        *(t.data_ptr() for t in (lo, hi, w, u)), B, M, N, *(t.data_ptr() for t in out),
        *ptrs, threads, layout,
    )  # fmt: skip
    assert rc == 0
    return out + (idx if want_idx else [])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ties", [False, True])
def test_units_layout_equals_the_tiles_and_the_reference(shape, ties):
    x, w, u = inputs(*shape, seed=sum(shape), ties=ties)
    z_t, i_t = point(x, w, u, TILES)
    for threads in (1, 3):
        z_u, i_u = point(x, w, u, UNITS, threads)
        assert torch.equal(z_u, z_t) and torch.equal(i_u, i_t)
    s = (u * (x[:, None, :] - w)).square()
    assert torch.equal(z_t, s.amax(-1)) and torch.equal(i_t.long(), s.argmax(-1))
    torch.testing.assert_close(z_t, scaled_sqdist_max_reference(x, w, u), rtol=0, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ties", [False, True])
def test_interval_units_layout_equals_the_tiles_and_the_reference(shape, ties):
    lo, w, u = inputs(*shape, seed=7 + sum(shape), ties=ties)
    hi = lo + torch.round(torch.rand(lo.shape, generator=torch.Generator().manual_seed(1)) * 2) / 8
    ref_lo, ref_hi = scaled_sqdist_max_interval_reference(lo, hi, w, u)
    tiles = box(lo, hi, w, u, TILES)
    for threads in (1, 3):
        for want_idx in (True, False):
            units = box(lo, hi, w, u, UNITS, threads, want_idx)
            for a, b in zip(units, tiles):
                assert torch.equal(a, b)
    torch.testing.assert_close(tiles[0], ref_lo, rtol=0, atol=0)
    torch.testing.assert_close(tiles[1], ref_hi, rtol=0, atol=0)


def _grads(x, w, u, req, g, backend, threads=None):
    import rbfi.ops as K

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        ins = [t.clone().requires_grad_(r) for t, r in zip((x, w, u), req)]
        fn = scaled_sqdist_max_reference if backend == "reference" else K.scaled_sqdist_max
        z = fn(*ins) if backend == "reference" else fn(*ins, backend=backend)
        return [z.detach(), *torch.autograd.grad(z, [t for t in ins if t.requires_grad], g)]
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("req", [(True, True, True), (True, False, False)])
def test_row_split_backward_matches_the_reference_and_any_thread_count(req):
    """2500 rows x 32 units x 64 inputs (a conv layer: batch x patches): the unit split's dx
    buffers would be 4.5 MB, so the rows are split. Gradients as the reference's; bitwise the
    same for 1, 2 and 3 threads and on repeated calls."""
    x, w, u = inputs(2500, 32, 64, seed=5)
    u = u.abs() + 0.2
    g = torch.randn(2500, 32, generator=torch.Generator().manual_seed(2))
    ref = _grads(x.double(), w.double(), u.double(), req, g.double(), "reference")
    runs = [_grads(x, w, u, req, g, "cpu", threads) for threads in (1, 2, 3, 1)]
    for a, b in zip(runs[0], ref):
        scale = b.abs().max().item()
        assert (a.double() - b).abs().max().item() <= 1e-4 * scale
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(other, runs[0]))


def test_interval_argmax_backward_on_many_rows_matches_the_reference():
    """The true-gradient interval backward walks 2500 rows in blocks (a conv layer's patches):
    its gradients are the reference's, bitwise the same for 1 and 3 threads."""
    import rbfi.ops as K

    lo, w, u = inputs(2500, 16, 96, seed=11)
    hi = lo + 0.1
    g = torch.Generator().manual_seed(3)
    g_lo, g_hi = torch.randn(2500, 16, generator=g), torch.randn(2500, 16, generator=g)

    def grads(fn, dtype, threads=1):
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            ins = [t.to(dtype).clone().requires_grad_(True) for t in (lo, hi, w, u)]
            z_lo, z_hi = fn(*ins)
            return torch.autograd.grad((z_lo, z_hi), ins, (g_lo.to(dtype), g_hi.to(dtype)))
        finally:
            torch.set_num_threads(old)

    def ours(*ins):
        return K.scaled_sqdist_max_interval(*ins, pseudogradient=False, backend="cpu")

    def reference(*ins):
        return scaled_sqdist_max_interval_reference(*ins, pseudogradient=False)

    expected = grads(reference, torch.float64)
    runs = [grads(ours, torch.float32, threads) for threads in (1, 3)]
    for a, b in zip(runs[0], expected):
        assert (a.double() - b).abs().max().item() <= 1e-5 * b.abs().max().item()
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))


@pytest.mark.parametrize(
    "shape, kernel, stride, width",
    [
        ((3, 2, 7, 6), (3, 3), (1, 1), 18),
        ((2, 3, 9, 8), (3, 2), (2, 3), 32),
        ((5, 1, 5, 5), (5, 5), (1, 1), 25),
    ],
)
def test_im2row_is_unfold_and_row2im_its_adjoint(shape, kernel, stride, width):
    """The C patches equal torch's unfold (transposed, zero columns after), bit for bit; row2im
    equals fold (unfold's adjoint) and gives the same bits with 1 and 3 threads."""
    F = torch.nn.functional
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    rows = cpu.cpu_im2row(x, kernel, stride, width)
    expected = F.unfold(x, kernel, stride=stride).transpose(1, 2)
    n = expected.shape[-1]
    assert torch.equal(rows[:, :n], expected.reshape(-1, n)) and not rows[:, n:].any()
    g = torch.randn(rows.shape, generator=torch.Generator().manual_seed(1))
    folded = F.fold(
        g[:, :n].reshape(shape[0], -1, n).transpose(1, 2), shape[2:], kernel, stride=stride
    )
    old = torch.get_num_threads()
    try:
        back = []
        for threads in (1, 3):
            torch.set_num_threads(threads)
            back.append(cpu.cpu_row2im(g, shape, kernel, stride))
    finally:
        torch.set_num_threads(old)
    torch.testing.assert_close(back[0], folded, rtol=1e-6, atol=1e-6)
    assert torch.equal(back[0], back[1])


def pseudo_backward(x, w, u, z, g, layout, skip=cpu.SKIP_THRESHOLD, threads=1):
    (B, N), M = x.shape, w.shape[0]
    dw, du, skipped = torch.empty(M, N), torch.empty(M, N), ctypes.c_int64(0)
    rc = cpu._lib().rbfi_backward_pseudo_layout(
        *(t.data_ptr() for t in (x, w, u, z, g)), B, M, N, 1.0, skip, None,
        dw.data_ptr(), du.data_ptr(), threads, ctypes.byref(skipped), layout,
    )  # fmt: skip
    assert rc == 0
    return dw, du


@pytest.mark.parametrize("shape", SHAPES + [(300, 16, 32)])
@pytest.mark.parametrize("hot", [False, True])
def test_parameter_backward_with_lanes_over_units_equals_the_tiles(shape, hot):
    """The first layer's backward (no dx) with lanes over units: the same dw, du bits as the
    register tiles (same terms, same order over rows, same skip rule), any thread count; with
    trailing zero-u columns (a conv window padded to the SIMD width) too."""
    x, w, u = inputs(*shape, seed=3 + sum(shape))
    if hot:  # large scales: many pseudogradient weights below the skip threshold
        u = torch.where(
            torch.rand(u.shape, generator=torch.Generator().manual_seed(4)) < 0.2, 10.0, u
        )
    if shape[2] > 8:
        u[:, -5:] = 0.0
        w[:, -5:] = 0.0
        x[:, -5:] = 0.0
    z, _ = point(x, w, u, TILES)
    g = torch.randn(z.shape, generator=torch.Generator().manual_seed(2))
    tiles = pseudo_backward(x, w, u, z, g, TILES)
    for threads in (1, 3):
        units = pseudo_backward(x, w, u, z, g, UNITS, threads=threads)
        assert all(torch.equal(a, b) for a, b in zip(units, tiles))
    assert tiles[0].abs().sum() > 0
