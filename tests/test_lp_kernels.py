"""The l_p-distance kernels of l_inf-distance nets (issue 26), y[b, j] = ||x[b] - w[j]||_p,
against the materialising reference on every backend, forward and backward.

Error measure (as tests/test_kernels.py): max |fused - reference| / max |reference| per tensor,
the reference in float64. Float32 itself limits the gradients at large p: the terms
(|d| / y)^(p - 1) magnify a relative rounding of y by p - 1, so the tolerance grows with p.
"""

from __future__ import annotations

import ctypes
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import rbfi.ops as K
from rbfi.ops import _build, chunked, cpu
from rbfi.ops.reference import lp_distance_reference

REPO = Path(__file__).resolve().parents[1]
SHAPES = [(1, 13, 37), (257, 13, 37), (6, 5, 16), (4, 3, 1), (3, 9, 70)]
PS = [1.0, 2.0, 8.0, 100.0, math.inf]
BACKENDS = ["cpu", "chunked"]

needs_cpu_kernel = pytest.mark.skipif(
    not K.cpu_kernel_available(), reason="no C compiler: the CPU kernel could not be built"
)


def tolerance(p: float) -> float:
    """float32 rounding of y, magnified p - 1 times in the gradient's powers."""
    return 1e-5 * max(10.0, p if math.isfinite(p) else 1.0)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().item()
    diff = (a.double() - b.double()).abs().max().item()
    return diff / scale if scale > 0 else diff


def inputs(B, M, N, seed=0, dtype=torch.float32, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    x = spread * torch.randn(B, N, generator=g, dtype=dtype)
    w = spread * torch.randn(M, N, generator=g, dtype=dtype)
    return x, w


def run(backend, x, w, p, need=(True, True), seed=1):
    """y and the gradients of (y * g).sum() for the inputs flagged in ``need``."""
    g = torch.randn(x.shape[0], w.shape[0], generator=torch.Generator().manual_seed(seed))
    ins = [t.clone().requires_grad_(r) for t, r in zip((x, w), need)]
    if backend == "reference64":
        ins = [t.detach().double().requires_grad_(r) for t, r in zip((x, w), need)]
        y = lp_distance_reference(*ins, p)
        g = g.double()
    else:
        y = K.lp_distance(*ins, p, backend=backend)
    wanted = [t for t in ins if t.requires_grad]
    grads = torch.autograd.grad(y, wanted, g) if wanted else ()
    return y.detach(), list(grads)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_the_reference(backend, p, shape):
    if backend == "cpu" and not K.cpu_kernel_available():
        pytest.skip("no C compiler: the CPU kernel could not be built")
    x, w = inputs(*shape, seed=sum(shape))
    y, grads = run(backend, x, w, p)
    y_ref, grads_ref = run("reference64", x, w, p)
    assert y.dtype == torch.float32 and y.shape == (shape[0], shape[1])
    for got, want in zip([y, *grads], [y_ref, *grads_ref]):
        assert rel_err(got, want) < tolerance(p)


@needs_cpu_kernel
@pytest.mark.parametrize("need", [(True, False), (False, True)])
@pytest.mark.parametrize("p", [3.5, 8.0])
def test_each_gradient_alone(need, p):
    x, w = inputs(5, 7, 41, seed=3)
    _, grads = run("cpu", x, w, p, need)
    _, grads_ref = run("reference64", x, w, p, need)
    assert len(grads) == 1
    assert rel_err(grads[0], grads_ref[0]) < tolerance(p)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 8.0, 100.0, math.inf])
def test_gradcheck_float64(p):
    """Finite differences in float64 against the analytic backward of the chunked backend
    (float64 always runs there) and of the reference."""
    x, w = inputs(3, 4, 6, seed=7, dtype=torch.float64)
    x.requires_grad_(True)
    w.requires_grad_(True)
    assert K.dispatch.resolve("auto", (x, w)) == "chunked"
    for backend in ("chunked", "reference"):
        assert torch.autograd.gradcheck(
            lambda a, b, be=backend: K.lp_distance(a, b, p, backend=be), (x, w), eps=1e-6
        )


def test_float64_chunked_is_exact_and_tiles_do_not_matter():
    x, w = inputs(9, 11, 23, seed=2, dtype=torch.float64)
    y_ref, grads_ref = run("reference64", x, w, 6.5)
    for tile in (1, 23, 50, 1 << 20):
        ops = chunked.chunked_lp_ops(tile_elements=tile)
        y = K.fused.FusedLpDistance.apply(x, w.requires_grad_(True), 6.5, ops)
        assert rel_err(y, y_ref) < 1e-12
        g = torch.randn(9, 11, generator=torch.Generator().manual_seed(1)).double()  # as run()
        (dw,) = torch.autograd.grad(y, [w], g)
        assert rel_err(dw, grads_ref[1]) < 1e-12
        w = w.detach()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [1e4, 1e6])
def test_large_p_is_stable(backend, p):
    """Distances up to ~1e3 and p up to 1e6: a naive sum of |d|^p overflows float64 itself;
    the kernels scale by the row maximum. y lies in [m, m N^(1/p)] (m = max_i |d_i|) and
    matches the float64 reference; the gradients are finite and have the p-norm's invariants."""
    if backend == "cpu" and not K.cpu_kernel_available():
        pytest.skip("no C compiler: the CPU kernel could not be built")
    x, w = inputs(4, 6, 30, seed=5, spread=300.0)
    assert ((x.double()[:, None] - w.double()).abs() ** 1e4).isinf().any()  # naive overflows
    y, grads = run(backend, x, w, p)
    m = (x[:, None] - w).abs().amax(-1)
    assert torch.isfinite(y).all() and all(torch.isfinite(t).all() for t in grads)
    assert (y >= m * (1 - 1e-6)).all() and (y <= m * 30 ** (1 / p) * (1 + 1e-6)).all()
    y_ref, _ = run("reference64", x, w, p)
    assert rel_err(y, y_ref) < 1e-6
    # the gradient of one output: dual norm ||dy/dx||_q = 1 (q = p / (p - 1)), signs of d, and
    # only coordinates where |d_i| is within a factor (1 - 30 / p) of the max (the rest would
    # weigh less than e^-30); float32 rounding of y, magnified p times, allows ~6% at p = 1e6
    q = p / (p - 1)
    for b, j in ((0, 0), (3, 5), (2, 1)):
        g = torch.zeros(4, 6)
        g[b, j] = 1.0
        xs = x.clone().requires_grad_(True)
        (dx,) = torch.autograd.grad(K.lp_distance(xs, w, p, backend=backend), [xs], g)
        d = x[b] - w[j]
        assert abs(dx[b].double().abs().pow(q).sum().item() - 1) < 0.1
        support = dx[b] != 0
        assert (dx[b][support].sign() == d[support].sign()).all()
        assert (d[support].abs() >= m[b, j] * (1 - 30 / p)).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [1.0, 2.0, 8.5, math.inf])
def test_zero_distance_gives_zero_and_no_nan(backend, p):
    """x = w exactly: y = 0 and the gradient 0 (a subgradient), never NaN."""
    if backend == "cpu" and not K.cpu_kernel_available():
        pytest.skip("no C compiler: the CPU kernel could not be built")
    x, w = inputs(3, 2, 20, seed=4)
    w[1] = x[0]
    y, (dx, dw) = run(backend, x, w, p)
    assert y[0, 1] == 0
    assert torch.isfinite(dx).all() and torch.isfinite(dw).all()
    g = torch.zeros(3, 2)
    g[0, 1] = 1.0
    ins = [x.clone().requires_grad_(True), w.clone().requires_grad_(True)]
    grads = torch.autograd.grad(K.lp_distance(*ins, p, backend=backend), ins, g)
    assert all((t == 0).all() for t in grads)


@needs_cpu_kernel
def test_cpu_kernel_is_bitwise_reproducible_across_threads():
    x, w = inputs(37, 29, 101, seed=8)
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            for _ in range(2):
                y, grads = run("cpu", x, w, 7.3)
                results.append([y, *grads])
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


@needs_cpu_kernel
def test_kernel_math_error():
    """The C kernel's own log2 and r^q (rbfi_lp_math) against float64: log2's absolute error
    (what p multiplies) below 1e-7 on (0, 1] besides the float32 rounding of the result;
    r^q's relative error below 2e-7 + (q + |q log2 r|) 1.2e-7 (the second term: rounding the
    float32 exponent; terms that small weigh nothing beside the largest, 1); r^q below 2^-126
    flushed to 0."""
    lib = _build.load_library().lib
    r = torch.cat([torch.rand(200_003, dtype=torch.float64), torch.tensor([1.0, 0.5, 1e-30])])
    r32 = r.float()
    for q in (0.0, 1.0, 7.0, 7.5, 63.0, 99.0, 999.0):
        log2, power = torch.empty_like(r32), torch.empty_like(r32)
        lib.rbfi_lp_math(
            ctypes.c_void_p(r32.data_ptr()),
            ctypes.c_float(q),
            ctypes.c_void_p(log2.data_ptr()),
            ctypes.c_void_p(power.data_ptr()),
            ctypes.c_int64(len(r32)),
        )
        exact = r32.double()
        true_log2 = exact.log2()  # float32 rounding of the result adds |log2 r| 6e-8
        assert ((log2.double() - true_log2).abs() <= 1e-7 + 1.2e-7 * true_log2.abs()).all()
        want = exact**q
        kept = want > 2.0**-120
        rel = ((power.double() - want).abs() / want)[kept]
        # 2^(q log2 r): the float32 exponent's rounding costs |q log2 r| 6e-8 ln 2
        bound = 2e-7 + (q + (q * true_log2).abs()) * 1.2e-7
        assert (rel <= bound[kept]).all(), q
        assert (power.double()[want < 2.0**-126] == 0).all()


def test_bad_arguments():
    x, w = torch.rand(3, 5), torch.rand(4, 5)
    for p in (0.5, 0.0, -1.0, float("nan"), "8", True, None):
        with pytest.raises(ValueError, match="p must be a number >= 1 or inf"):
            K.lp_distance(x, w, p)
    with pytest.raises(ValueError, match=r"expected x \(B, N\) and w \(M, N\)"):
        K.lp_distance(x, torch.rand(4, 6), 2.0)
    with pytest.raises(ValueError, match="empty input dimension"):
        K.lp_distance(torch.rand(3, 0), torch.rand(4, 0), 2.0)
    with pytest.raises(ValueError, match="share device and dtype"):
        K.lp_distance(x, w.double(), 2.0, backend="chunked")
    with pytest.raises(ValueError, match="backend='cpu' cannot run here: it needs float32"):
        K.lp_distance(x.double(), w.double(), 2.0, backend="cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        K.lp_distance(x, w, 2.0, backend="gpu")


def test_empty_batch():
    y = K.lp_distance(torch.rand(0, 5), torch.rand(4, 5), 3.0)
    assert y.shape == (0, 4)


def test_cpu_library_declares_the_lp_functions():
    if not K.cpu_kernel_available():
        pytest.skip("no C compiler: the CPU kernel could not be built")
    lib = _build.load_library().lib
    for name in ("rbfi_lp_forward", "rbfi_lp_backward", "rbfi_lp_math"):
        assert getattr(lib, name).argtypes
    x, w = inputs(2, 3, 4)
    with pytest.raises(RuntimeError, match="rbfi_lp_forward failed"):
        cpu.cpu_lp_forward(x, w, 0.5)  # the C function refuses p < 1 itself


TRITON_SCRIPT = textwrap.dedent(
    """
    import math
    import torch
    from rbfi.ops import lp_distance
    from rbfi.ops.reference import lp_distance_reference as ref

    def rel(a, b):
        return ((a.double() - b).abs().max() / b.abs().max()).item()

    worst = 0.0
    for B, M, N in [(1, 13, 37), (40, 17, 33), (5, 3, 1)]:
        x, w = torch.randn(B, N), torch.randn(M, N)
        g = torch.randn(B, M)
        for p in (1.0, 2.0, 8.0, 100.0, math.inf):
            for need in ((True, True), (True, False), (False, True)):
                ins = [t.clone().requires_grad_(r) for t, r in zip((x, w), need)]
                ins_r = [t.double().requires_grad_(r) for t, r in zip((x, w), need)]
                y = lp_distance(*ins, p, backend="triton")
                y_r = ref(*ins_r, p)
                errs = [rel(y, y_r)]
                gs = torch.autograd.grad(y, [t for t in ins if t.requires_grad], g)
                grs = torch.autograd.grad(y_r, [t for t in ins_r if t.requires_grad], g.double())
                errs += [rel(a, b) for a, b in zip(gs, grs)]
                scale = max(10.0, p) if math.isfinite(p) else 10.0
                worst = max(worst, max(errs) / scale)
    print("WORST", worst)
    """
)


def test_triton_lp_kernels_in_interpreter_mode():
    """Triton is installed by install.sh (its interpreter runs the kernels on the CPU): this
    test never skips. Errors are divided by max(10, p) (the tolerance's growth with p)."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", TRITON_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    worst = float(out.stdout.split("WORST")[-1])
    assert worst < 1e-5
