"""Fused interval kernels (z_lo, z_hi over a box lo <= x <= hi) against the materialising
reference :func:`rbfi.ops.reference.scaled_sqdist_max_interval_reference`.

    near = clamp(w, lo, hi) - w,  far = the end of [lo, hi] farther from w (hi on a tie),
    z_lo = max_i (u near)^2,      z_hi = max_i (u far)^2.

Error measure as in tests/test_kernels.py: for each output, max |fused - reference| /
max |reference| (a gradient sum can cancel to ~0, where per-element ratios mean nothing).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

import rbfi.ops as K
from rbfi.ops import cpu, dispatch
from rbfi.ops.chunked import chunked_interval_forward
from rbfi.ops.reference import scaled_sqdist_max_interval_reference

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-4
BACKENDS = ("cpu", "chunked")  # triton: in a subprocess, below
# requires_grad of (lo, hi, w, u): every one of the 16 combinations
GRAD_COMBOS = list(itertools.product((True, False), repeat=4))
# N = 1, N not a multiple of the SIMD width (4, 8 or 16), M not a multiple of the unit blocks
# (2 or 4 in backward, 4 in forward), B = 1, odd B against the forward's 2-row tile
SHAPES = [(1, 13, 37), (7, 9, 70), (4, 3, 1), (33, 5, 16), (2, 6, 17)]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    if b.numel() == 0:
        return 0.0 if a.numel() == 0 else float("inf")
    scale = b.abs().max().item()
    diff = (a.double() - b.double()).abs().max().item()
    return diff / scale if scale > 0 else diff


def make_box(
    B: int, M: int, N: int, seed: int = 0, dtype: torch.dtype = torch.float32, eps: float = 0.3
) -> tuple[torch.Tensor, ...]:
    """A clipped eps-box around random x in [0, 1]; w in [0, 1], u in [0.01, 3]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N, generator=g, dtype=dtype)
    r = eps * torch.rand(B, N, generator=g, dtype=dtype)
    lo, hi = (x - r).clamp(0, 1), (x + r).clamp(0, 1)
    w = torch.rand(M, N, generator=g, dtype=dtype)
    u = 0.01 + 2.99 * torch.rand(M, N, generator=g, dtype=dtype)
    return lo, hi, w, u


def run(
    fn: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    tensors: Sequence[torch.Tensor],
    req: Sequence[bool],
    grads_out: tuple[torch.Tensor, torch.Tensor],
) -> tuple[tuple[torch.Tensor, torch.Tensor], list[torch.Tensor]]:
    """(z_lo, z_hi) and the gradients of sum(z_lo g_lo + z_hi g_hi) for the inputs in ``req``."""
    ins = [t.clone().requires_grad_(r) for t, r in zip(tensors, req)]
    z_lo, z_hi = fn(*ins)
    wanted = [t for t in ins if t.requires_grad]
    grads = torch.autograd.grad((z_lo, z_hi), wanted, grads_out) if wanted else ()
    return (z_lo.detach(), z_hi.detach()), list(grads)


def compare(
    backend: str,
    tensors: Sequence[torch.Tensor],
    pseudo: bool,
    req: Sequence[bool] = (True,) * 4,
    beta: float = 1.0,
    tol: float = TOL,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Assert the fused op matches the reference; returns the fused (z_lo, z_hi)."""
    B, M = tensors[0].shape[0], tensors[2].shape[0]
    g = torch.Generator().manual_seed(seed + 1)
    dtype = tensors[0].dtype
    grads_out = (
        torch.randn(B, M, generator=g, dtype=dtype),
        torch.randn(B, M, generator=g, dtype=dtype),
    )

    def fused(*a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return K.scaled_sqdist_max_interval(*a, pseudogradient=pseudo, beta=beta, backend=backend)

    zs, grads = run(fused, tensors, req, grads_out)
    zs_r, grads_r = run(
        lambda *a: scaled_sqdist_max_interval_reference(*a, pseudo, beta),
        tensors,
        req,
        grads_out,
    )
    for z, zr in zip(zs, zs_r):
        assert z.shape == zr.shape and z.dtype == zr.dtype
        assert rel_err(z, zr) < tol, (backend, pseudo)
    assert len(grads) == len(grads_r)
    for a, b in zip(grads, grads_r):
        assert a.shape == b.shape
        assert rel_err(a, b) < tol, (backend, pseudo, req)
    return zs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pseudo", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_reference_every_grad_combo(
    backend: str, pseudo: bool, shape: tuple[int, int, int]
) -> None:
    box = make_box(*shape, seed=sum(shape))
    for req in GRAD_COMBOS:
        compare(backend, box, pseudo, req)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_is_exact(backend: str) -> None:
    """The kernels compute |near|, |far| as max(a, b, 0), -min(a, b) with a = lo - w,
    b = w - hi: the same float32 values as the reference, so z_lo, z_hi are bitwise equal."""
    box = make_box(9, 11, 53, seed=3)
    z = K.scaled_sqdist_max_interval(*box, backend=backend)
    zr = scaled_sqdist_max_interval_reference(*box)
    assert torch.equal(z[0], zr[0]) and torch.equal(z[1], zr[1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pseudo", [True, False])
def test_degenerate_box_equals_the_point_kernel(backend: str, pseudo: bool) -> None:
    """lo == hi == x: z_lo == z_hi == z, and the two boxes' gradients sum to the point one."""
    lo, _, w, u = make_box(6, 7, 41, seed=4)
    x = lo
    z_lo, z_hi = K.scaled_sqdist_max_interval(x, x, w, u, backend=backend)
    z = K.scaled_sqdist_max(x, w, u, backend=backend)
    assert torch.equal(z_lo, z) and torch.equal(z_hi, z)
    compare(backend, (x, x.clone(), w, u), pseudo)
    # with g_lo = g, g_hi = 0 the parameter gradients equal the point kernel's
    g = torch.randn(6, 7)
    ws, us = w.clone().requires_grad_(), u.clone().requires_grad_()
    zl, _ = K.scaled_sqdist_max_interval(x, x, ws, us, pseudogradient=pseudo, backend=backend)
    dw, du = torch.autograd.grad(zl, (ws, us), g)
    wp, up = w.clone().requires_grad_(), u.clone().requires_grad_()
    zp = K.scaled_sqdist_max(x, wp, up, pseudogradient=pseudo, backend=backend)
    dwp, dup = torch.autograd.grad(zp, (wp, up), g)
    assert rel_err(dw, dwp) < TOL and rel_err(du, dup) < TOL


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pseudo", [True, False])
def test_boxes_clipped_at_0_and_1_and_values_at_the_bounds(backend: str, pseudo: bool) -> None:
    g = torch.Generator().manual_seed(7)
    B, M, N = 12, 10, 45
    x = torch.randint(0, 2, (B, N), generator=g).float()
    x = (x + 1e-3 * torch.rand(B, N, generator=g)).clamp(0, 1)  # near 0 and 1
    lo, hi = (x - 0.3).clamp(0, 1), (x + 0.3).clamp(0, 1)
    assert (lo == 0).any() and (hi == 1).any()
    w = torch.randint(0, 2, (M, N), generator=g).float()  # w at the pixel bounds
    u = torch.where(torch.rand(M, N, generator=g) < 0.5, 0.01, 3.0)
    compare(backend, (lo, hi, w, u), pseudo)
    full = (torch.zeros(B, N), torch.ones(B, N), w, u)  # the whole [0, 1] box
    z_lo, z_hi = compare(backend, full, pseudo)
    assert torch.equal(z_lo, torch.zeros(B, M))  # every w in [0, 1]: distance 0 reachable


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pseudo", [True, False])
@pytest.mark.parametrize("where", ["inside", "left", "right", "mixed"])
def test_w_inside_left_of_and_right_of_the_interval(backend: str, pseudo: bool, where: str) -> None:
    g = torch.Generator().manual_seed(8)
    B, M, N = 5, 6, 23
    lo = 0.3 + 0.1 * torch.rand(B, N, generator=g)
    hi = lo + 0.2 + 0.1 * torch.rand(B, N, generator=g)  # [0.3, 0.8] roughly
    w = {
        "inside": 0.4 + 0.1 * torch.rand(M, N, generator=g),  # lo <= 0.4, 0.5 <= hi
        "left": 0.25 * torch.rand(M, N, generator=g),  # w < lo: near = lo, far = hi
        "right": 0.85 + 0.15 * torch.rand(M, N, generator=g),  # w > hi: near = hi, far = lo
        "mixed": torch.rand(M, N, generator=g),
    }[where]
    u = 0.01 + 2.99 * torch.rand(M, N, generator=g)
    z_lo, _ = compare(backend, (lo, hi, w, u), pseudo)
    if where == "inside":
        assert torch.equal(z_lo, torch.zeros(B, M))
    else:
        assert (z_lo > 0).all()
    if where in ("left", "right"):
        # only one end moves each bound: z_lo depends on the near end, z_hi on the far one
        near_end, far_end = ("lo", "hi") if where == "left" else ("hi", "lo")
        box = dict(lo=lo.clone().requires_grad_(), hi=hi.clone().requires_grad_())
        zl, zh = K.scaled_sqdist_max_interval(
            box["lo"], box["hi"], w, u, pseudogradient=pseudo, backend=backend
        )
        d_near = torch.autograd.grad(zl.sum(), (box[near_end], box[far_end]), retain_graph=True)
        d_far = torch.autograd.grad(zh.sum(), (box[near_end], box[far_end]))
        assert d_near[1].abs().max() == 0 and d_near[0].abs().max() > 0
        assert d_far[0].abs().max() == 0 and d_far[1].abs().max() > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_far_end_goes_to_hi_and_first_arg_max(backend: str) -> None:
    """w at the interval's centre: both ends equally far, the reference (and so the gradient)
    takes hi. Equal s across inputs (also across SIMD lanes and in the scalar tail): the first
    arg-max."""
    N = 70
    lo, hi = torch.full((3, N), 0.25), torch.full((3, N), 0.75)
    w = torch.full((2, N), 0.5)  # exact ties: hi - w == w - lo == 0.25
    u = torch.ones(2, N)
    for pseudo in (True, False):
        compare(backend, (lo, hi, w, u), pseudo)
        los, his = lo.clone().requires_grad_(), hi.clone().requires_grad_()
        _, z_hi = K.scaled_sqdist_max_interval(los, his, w, u, pseudogradient=pseudo)
        d_lo, d_hi = torch.autograd.grad(z_hi.sum(), (los, his))
        assert d_lo.abs().max() == 0 and (d_hi.sum(dim=1) > 0).all()
    # first arg-max for both maxes: raise some inputs' u to the same value
    u = torch.ones(2, N)
    u[0, [3, 20, 69]] = 2.0
    u[1, [66, 68]] = 2.0  # inside the scalar tail for every SIMD width
    lo, hi = torch.full((2, N), 0.25), torch.full((2, N), 0.5)
    w = torch.full((2, N), 0.0)  # w left of every interval: near = lo - w, far = hi - w
    forward = cpu.cpu_interval_forward if backend == "cpu" else chunked_interval_forward
    *_, idx_lo, idx_hi = forward(lo, hi, w, u, want_idx=True)
    want = torch.tensor([[3, 66], [3, 66]])
    assert torch.equal(idx_lo.long(), want) and torch.equal(idx_hi.long(), want)
    u = torch.ones(2, N)  # all equal: index 0
    forward = cpu.cpu_interval_forward if backend == "cpu" else chunked_interval_forward
    *_, idx_lo, idx_hi = forward(lo, hi, w, u, want_idx=True)
    assert idx_lo.max() == 0 and idx_hi.max() == 0
    for pseudo in (True, False):
        compare(backend, (lo, hi, w, u), pseudo)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("beta", [0.0, 0.5, 3.0])
def test_beta(backend: str, beta: float) -> None:
    compare(backend, make_box(7, 6, 29, seed=9), True, beta=beta)


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_exponents_are_clamped(backend: str) -> None:
    """u up to 10 and w outside [0, 1]: c z reaches ~230, beyond the exp2 polynomial's range
    [-125, 127], so the CPU kernel clamps those rows' exponents (weights < 2^-125 there)."""
    g = torch.Generator().manual_seed(10)
    B, M, N = 5, 6, 37
    lo = 0.5 * torch.rand(B, N, generator=g)
    hi = lo + 0.5
    w = 3.0 * torch.rand(M, N, generator=g) - 1.0
    u = torch.full((M, N), 10.0)
    u[:, ::3] = -0.5  # negative scales too: only u^2 matters
    z_lo, z_hi = compare(backend, (lo, hi, w, u), True, beta=0.8)
    assert 0.8 * 1.4427 * z_hi.max() > 127


@pytest.mark.parametrize("backend", BACKENDS + ("auto",))
def test_empty_batch_and_no_units(backend: str) -> None:
    for B, M in ((0, 4), (3, 0)):
        box = make_box(B, M, 6)
        for pseudo in (True, False):
            ins = [t.clone().requires_grad_() for t in box]
            z_lo, z_hi = K.scaled_sqdist_max_interval(*ins, pseudogradient=pseudo, backend=backend)
            assert z_lo.shape == z_hi.shape == (B, M)
            grads = torch.autograd.grad(z_lo.sum() + z_hi.sum(), ins)
            for grad, t in zip(grads, ins):
                assert grad.shape == t.shape and not grad.any()


@pytest.mark.parametrize("backend", BACKENDS + ("auto",))
def test_noncontiguous_inputs(backend: str) -> None:
    lo, hi, w, u = make_box(8, 5, 12, seed=11)
    lo_t, u_t = lo.t().contiguous().t(), u.t().contiguous().t()  # same values, column-major
    assert not lo_t.is_contiguous() and not u_t.is_contiguous()
    compare(backend, (lo_t, hi, w, u_t), True)
    compare(backend, (lo_t, hi, w, u_t), False)


@pytest.mark.parametrize("pseudo", [True, False])
def test_needs_input_grad_is_honoured(monkeypatch: pytest.MonkeyPatch, pseudo: bool) -> None:
    seen = []
    field = "backward_pseudo" if pseudo else "backward_argmax"
    original = getattr(cpu.CPU_INTERVAL_OPS, field)

    def spy(*args: object, **kwargs: object) -> tuple:
        out = original(*args, **kwargs)
        seen.append(tuple(t is not None for t in out))
        return out

    monkeypatch.setattr(
        cpu, "CPU_INTERVAL_OPS", dataclasses.replace(cpu.CPU_INTERVAL_OPS, **{field: spy})
    )
    box = make_box(5, 4, 19)
    for req in GRAD_COMBOS:
        seen.clear()
        compare("cpu", box, pseudo, req)
        want_x, want_p = req[0] or req[1], req[2] or req[3]
        assert seen == ([(want_x, want_x, want_p, want_p)] if any(req) else [])


def test_forward_saves_no_batch_by_units_by_inputs_tensor() -> None:
    B, M, N = 6, 5, 23
    lo, hi, w, u = make_box(B, M, N)
    w.requires_grad_()
    for pseudo in (True, False):
        z_lo, _ = K.scaled_sqdist_max_interval(lo, hi, w, u, pseudogradient=pseudo, backend="cpu")
        saved = [t for t in z_lo.grad_fn.saved_tensors if t is not None]
        assert all(t.numel() < B * M * N for t in saved)
        idx = [t for t in saved if not t.is_floating_point()]
        assert len(idx) == (0 if pseudo else 2)
        assert all(t.dtype == torch.int32 and t.shape == (B, M) for t in idx)


def test_deterministic_across_calls_and_thread_counts() -> None:
    """One pass, no atomics, dlo/dhi summed in fixed chunks: bitwise equal every time (and, up
    to 8 threads, for every thread count)."""
    lo, hi, w, u = make_box(24, 67, 301, seed=12)
    g = torch.Generator().manual_seed(13)
    grads_out = (torch.randn(24, 67, generator=g), torch.randn(24, 67, generator=g))
    fn = lambda *a: K.scaled_sqdist_max_interval(*a, backend="cpu")
    old = torch.get_num_threads()
    results = []
    try:
        for nt in (1, 2, 3, 2):
            torch.set_num_threads(nt)
            results.append(run(fn, (lo, hi, w, u), (True,) * 4, grads_out))
    finally:
        torch.set_num_threads(old)
    first_z, first_g = results[0]
    assert len(first_g) == 4
    for zs, grads in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(zs, first_z))
        assert all(torch.equal(a, b) for a, b in zip(grads, first_g))
    compare("cpu", (lo, hi, w, u), True)


def test_chunked_float64_matches_reference() -> None:
    box = make_box(6, 5, 11, dtype=torch.float64, seed=14)
    for pseudo in (True, False):
        compare("chunked", box, pseudo, tol=1e-12)


def test_dispatch_policy() -> None:
    """auto: cpu for float32 CPU tensors (the interval kernel exists now), chunked for float64,
    for empty inputs and for beta < 0; a named backend runs or says why it cannot."""
    box = make_box(3, 4, 5)
    assert K.cpu_kernel_available()  # gcc is present: the kernel must build
    assert dispatch.resolve("auto", box) == "cpu"
    assert dispatch.interval_ops("cpu") is cpu.CPU_INTERVAL_OPS
    assert K.kernel_info()["auto"] == "cpu"
    box64 = tuple(t.double() for t in box)
    assert dispatch.resolve("auto", box64) == "chunked"
    assert dispatch.resolve("auto", make_box(0, 4, 5)) == "chunked"
    assert dispatch.resolve("auto", box, beta_ok=False) == "chunked"
    assert dispatch.resolve("torch", box) == "chunked"
    calls = []
    original = cpu.CPU_INTERVAL_OPS.forward

    def spy_forward(*args: torch.Tensor | bool) -> tuple:
        calls.append(args[0].dtype)
        return original(*args)

    spied = dataclasses.replace(cpu.CPU_INTERVAL_OPS, forward=spy_forward)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cpu, "CPU_INTERVAL_OPS", spied)
        K.scaled_sqdist_max_interval(*box)  # auto
        K.scaled_sqdist_max_interval(*box64)  # float64: chunked, not the C kernel
    assert calls == [torch.float32]
    with pytest.raises(ValueError, match="float32"):
        K.scaled_sqdist_max_interval(*box64, backend="cpu")
    with pytest.raises(ValueError, match="beta >= 0"):
        K.scaled_sqdist_max_interval(*box, beta=-1.0, backend="cpu")
    compare("auto", box, True, beta=-0.5)  # auto: beta < 0 goes to chunked
    with pytest.raises(ValueError, match="lo and hi"):
        K.scaled_sqdist_max_interval(box[0], box[1][:, :4], box[2], box[3], backend="cpu")


TRITON_SCRIPT = textwrap.dedent(
    """
    import itertools
    import torch
    from rbfi.ops import scaled_sqdist_max, scaled_sqdist_max_interval
    from rbfi.ops.triton import triton_interval_forward
    from rbfi.ops.reference import scaled_sqdist_max_interval_reference as ref

    def rel(a, b):
        s = b.abs().max()
        return ((a - b).abs().max() / s).item() if s > 0 else (a - b).abs().max().item()

    combos = list(itertools.product((True, False), repeat=4))[:-1]  # all but no grad
    worst = 0.0
    for B, M, N, rng in [(1, 13, 37, combos), (20, 17, 33, combos[::5]), (3, 4, 1, combos[::7])]:
        g = torch.Generator().manual_seed(B + M + N)
        x = torch.rand(B, N, generator=g)
        r = 0.3 * torch.rand(B, N, generator=g)
        lo, hi = (x - r).clamp(0, 1), (x + r).clamp(0, 1)
        w = torch.rand(M, N, generator=g)
        u = 0.01 + 2.99 * torch.rand(M, N, generator=g)
        gs = (torch.randn(B, M, generator=g), torch.randn(B, M, generator=g))
        for pseudo in (True, False):
            for req in rng:
                ins = [t.clone().requires_grad_(q) for t, q in zip((lo, hi, w, u), req)]
                ins_r = [t.clone().requires_grad_(q) for t, q in zip((lo, hi, w, u), req)]
                z = scaled_sqdist_max_interval(*ins, pseudogradient=pseudo, backend="triton")
                zr = ref(*ins_r, pseudo)
                worst = max([worst] + [rel(a, b) for a, b in zip(z, zr)])
                da = torch.autograd.grad(z, [t for t in ins if t.requires_grad], gs)
                db = torch.autograd.grad(zr, [t for t in ins_r if t.requires_grad], gs)
                worst = max([worst] + [rel(a, b) for a, b in zip(da, db)])
    # lo == hi == x: the point kernel's z
    z_lo, z_hi = scaled_sqdist_max_interval(x, x, w, u, backend="triton")
    z = scaled_sqdist_max(x, w, u, backend="triton")
    assert torch.equal(z_lo, z) and torch.equal(z_hi, z)
    # ties: first arg-max of both maxes, far end on a tie is hi
    u = torch.ones(2, 40)
    u[0, [5, 21, 39]] = 2.0
    lo, hi, w = torch.full((2, 40), 0.25), torch.full((2, 40), 0.5), torch.zeros(2, 40)
    _, _, il, ih = triton_interval_forward(lo, hi, w, u, True)
    assert il[:, 0].tolist() == [5, 5] and ih[:, 1].tolist() == [0, 0], (il, ih)
    his = torch.full((2, 40), 0.75, requires_grad=True)
    los = lo.clone().requires_grad_()
    _, zh = scaled_sqdist_max_interval(los, his, torch.full((3, 40), 0.5), torch.ones(3, 40),
                                       backend="triton")
    dl, dh = torch.autograd.grad(zh.sum(), (los, his))
    assert dl.abs().max() == 0 and dh.abs().min() > 0
    # large exponents (u = 10, w outside [0, 1]) with masked batch rows: no overflow, no NaN
    g = torch.Generator().manual_seed(10)
    lo = 0.5 * torch.rand(5, 37, generator=g)
    hi = lo + 0.5
    w = 3.0 * torch.rand(6, 37, generator=g) - 1.0
    u = torch.full((6, 37), 10.0)
    ins = [t.clone().requires_grad_() for t in (lo, hi, w, u)]
    ins_r = [t.clone().requires_grad_() for t in (lo, hi, w, u)]
    z = scaled_sqdist_max_interval(*ins, beta=0.8, backend="triton")
    zr = ref(*ins_r, True, 0.8)
    da = torch.autograd.grad(z, ins, (torch.ones(5, 6), torch.ones(5, 6)))
    db = torch.autograd.grad(zr, ins_r, (torch.ones(5, 6), torch.ones(5, 6)))
    worst = max([worst] + [rel(a, b) for a, b in zip(da, db)])
    print("WORST", worst)
    """
)


@pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="triton is not installed (install.sh installs it; or pip install triton==3.9.0)",
)
def test_triton_interval_kernels_in_interpreter_mode() -> None:
    """Triton's interpreter runs the kernels on the CPU. Installed (install.sh installs it),
    this test always runs; skipped, with the reason, only where triton is absent (a plain
    ``pip install -e .[dev]``)."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", TRITON_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    worst = float(out.stdout.split("WORST")[-1])
    assert worst < TOL
