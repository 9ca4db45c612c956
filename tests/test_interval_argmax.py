"""The interval op's true-gradient path (eq. 10, what certified training with
``certified_gradient="true"`` runs) on the CPU kernel, against independent computations:

- the forward's arg-maxes against a brute-force first arg-max of the materialised squares
  (exact, ties included), and its z against the reference (bitwise);
- ``rbfi_interval_backward_argmax`` against the torch code it replaced
  (:func:`rbfi.ops.chunked.interval_argmax_backward`) for arbitrary indices, and through
  autograd against the materialising reference, on shapes large enough for several threads;
- the chunked fallback when the kernel cannot be built.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import rbfi.ops as K
from rbfi.ops import cpu
from rbfi.ops.chunked import interval_argmax_backward
from rbfi.ops.reference import interval_offsets
from tests.test_interval_kernels import TOL, compare, make_box, rel_err

pytestmark = pytest.mark.skipif(not K.cpu_kernel_available(), reason="no C kernel here")


def brute_force(lo, hi, w, u) -> tuple[torch.Tensor, ...]:
    """(z_lo, idx_lo, z_hi, idx_hi): maxes of the materialised squares and the first index
    holding each (argmax of a 0/1 mask returns the first maximal entry)."""
    near, far = interval_offsets(lo, hi, w)
    out = []
    for d in (near, far):
        s = (u * d).square()
        z = s.amax(dim=-1)
        out += [z, (s == z.unsqueeze(-1)).int().argmax(dim=-1)]
    return tuple(out)


def check_forward(lo, hi, w, u) -> None:
    z_lo, z_hi, idx_lo, idx_hi = cpu.cpu_interval_forward(lo, hi, w, u, want_idx=True)
    plain_lo, plain_hi, _, _ = cpu.cpu_interval_forward(lo, hi, w, u, want_idx=False)
    r_zlo, r_ilo, r_zhi, r_ihi = brute_force(lo, hi, w, u)
    assert torch.equal(z_lo, r_zlo) and torch.equal(z_hi, r_zhi)
    assert torch.equal(plain_lo, z_lo) and torch.equal(plain_hi, z_hi)
    assert torch.equal(idx_lo.long(), r_ilo), (idx_lo != r_ilo).nonzero()[:5]
    assert torch.equal(idx_hi.long(), r_ihi), (idx_hi != r_ihi).nonzero()[:5]


# N across the SIMD widths (4, 8, 16): below one vector, exact multiples, scalar tails, and
# B, M odd against the 2 x 2 arg-max tile
FORWARD_SHAPES = [(1, 1, 1), (3, 5, 7), (5, 3, 16), (4, 7, 64), (7, 6, 389), (6, 4, 784)]


@pytest.mark.parametrize("shape", FORWARD_SHAPES)
def test_forward_arg_max_is_the_first_arg_max_of_the_squares(shape: tuple[int, int, int]) -> None:
    check_forward(*make_box(*shape, seed=sum(shape)))


@pytest.mark.parametrize("shape", FORWARD_SHAPES)
def test_forward_arg_max_with_many_exact_ties(shape: tuple[int, int, int]) -> None:
    """Values on a grid of quarters and u = 1: every max is held by many inputs, across lanes,
    vectors and the scalar tail; negative u too (only |u| matters)."""
    lo, hi, w, u = make_box(*shape, seed=sum(shape) + 1)
    q = lambda t: (4 * t).round() / 4
    lo, w = q(lo), q(w)
    hi = torch.maximum(lo, q(hi))
    u = torch.where(torch.rand(u.shape) < 0.5, -1.0, 1.0)
    check_forward(lo, hi, w, u)
    g = torch.Generator().manual_seed(2)
    full = torch.zeros_like(lo), torch.ones_like(hi)  # the whole [0, 1]: z_lo = 0 everywhere
    w = torch.rand(w.shape, generator=g)
    check_forward(*full, w, u)


def test_forward_arg_max_where_the_squares_underflow() -> None:
    """Offsets of ~1e-25: their squares are 0 in float32 (or subnormal), so all s tie although
    the offsets differ; the first arg-max of s is then 0 (or the first subnormal maximum),
    not the largest offset."""
    B, M, N = 3, 4, 53
    g = torch.Generator().manual_seed(3)
    x = 1e-25 * torch.rand(B, N, generator=g)
    w = torch.zeros(M, N)
    u = torch.ones(M, N)
    check_forward(x, x, w, u)  # lo = hi: near = far = x
    check_forward(x, x + 1e-21 * torch.rand(B, N, generator=g), w, u)  # squares ~1e-42
    check_forward(x, x + 0.5, w, u)  # far normal, near tiny
    lo = torch.zeros(B, N)
    lo[:, 17] = 2e-19  # one offset above 2^-60, the rest below
    lo[:, 3] = 3e-20
    check_forward(lo, lo, w, u)


def test_forward_arg_max_at_large_scales() -> None:
    """u up to 1e20 (|t| beyond 2^60): the exact rescan keeps the first arg-max of s."""
    lo, hi, w, u = make_box(4, 5, 37, seed=4)
    u = u * torch.where(torch.rand(u.shape) < 0.3, 1e20, 1.0)
    check_forward(lo, hi, w, u)


def random_backward_inputs(B: int, M: int, N: int, seed: int) -> tuple[torch.Tensor, ...]:
    lo, hi, w, u = make_box(B, M, N, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    w[:, ::5] = 1.5  # right of every interval: near = hi - w < 0, far = lo - w
    w[:, 1::7] = -0.5  # left of every interval
    lo[:, 2::9], hi[:, 2::9], w[:, 2::9] = 0.25, 0.75, 0.5  # both ends equally far: far is hi
    idx_lo = torch.randint(0, N, (B, M), generator=g, dtype=torch.int32)
    idx_hi = torch.randint(0, N, (B, M), generator=g, dtype=torch.int32)
    g_lo, g_hi = torch.randn(B, M, generator=g), torch.randn(B, M, generator=g)
    return lo, hi, w, u, idx_lo, idx_hi, g_lo, g_hi


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 5), (9, 13, 70), (100, 64, 97)])
def test_backward_matches_the_torch_version_for_any_indices(shape: tuple[int, int, int]) -> None:
    """Random indices (not only arg-maxes), w inside, left and right of the intervals, every
    need_x / need_params combination: the C kernel equals the torch code term by term, up to
    the order of the sums."""
    args = random_backward_inputs(*shape, seed=sum(shape))
    for need_x, need_params in itertools.product((True, False), repeat=2):
        ours = cpu.cpu_interval_backward_argmax(*args, need_x, need_params)
        theirs = interval_argmax_backward(*args, need_x, need_params)
        for a, b in zip(ours, theirs):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.shape == b.shape and a.dtype == b.dtype
                assert rel_err(a, b) < 1e-6


def test_backward_against_the_reference_and_bitwise_across_threads() -> None:
    """Big enough for the parallel path (B M >= 4096): gradients through autograd match the
    materialising reference, and are bitwise equal for 1, 2 and 3 threads."""
    box = make_box(70, 67, 131, seed=5)
    compare("cpu", box, pseudo=False)
    args = random_backward_inputs(70, 67, 131, seed=6)
    old = torch.get_num_threads()
    outs = []
    try:
        for nt in (1, 2, 3):
            torch.set_num_threads(nt)
            outs.append(cpu.cpu_interval_backward_argmax(*args, True, True))
    finally:
        torch.set_num_threads(old)
    assert all(torch.equal(a, b) for out in outs[1:] for a, b in zip(out, outs[0]))


def test_certified_layer_gradients_match_the_reference() -> None:
    """A certified-training-sized call (B = 100, a 512-unit layer, the eps = 0.3 box), true
    gradients of both bounds into lo, hi, w and u, against the reference."""
    compare("cpu", make_box(100, 128, 784, seed=7), pseudo=False, tol=TOL)


def test_fallback_without_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No compiler: one RuntimeWarning, and "auto" runs the true-gradient interval op on the
    chunked backend, still matching the reference."""
    monkeypatch.setenv("RBFI_CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("RBFI_CACHE_DIR", str(tmp_path / "cache"))
    box = make_box(6, 5, 21, seed=8)
    with pytest.warns(RuntimeWarning, match="falling back"):
        assert not K.cpu_kernel_available()
    assert K.dispatch.resolve("auto", box) == "chunked"
    compare("auto", box, pseudo=False)
    ins = [t.clone().requires_grad_() for t in box]
    z_lo, z_hi = K.scaled_sqdist_max_interval(*ins, pseudogradient=False)
    assert z_lo.grad_fn is not None
    grads = torch.autograd.grad(z_lo.sum() + z_hi.sum(), ins)
    assert all(torch.isfinite(gr).all() for gr in grads)
    assert rel_err(z_lo.detach(), brute_force(*box)[0]) == 0
