"""The tiling shared by the Triton kernels (:mod:`rbfi.ops.triton`, :mod:`rbfi.ops.triton_lp`).

Every kernel reads row-major float32 arrays of the shapes (B, N) (inputs), (M, N) (units'
parameters) and (B, M) (outputs) in (BB, BN), (BM, BN) and (BB, BM) tiles, 0 outside the array,
and runs on a grid over two of the three dimensions: "BM" (a program per (BB, BM) block of
outputs: the forwards), "BN" (per (BB, BN) block of inputs: dx) or "MN" (per (BM, BN) block of
parameters: dw, du). Importing this module needs ``triton``.
"""

from __future__ import annotations

import triton
import triton.language as tl

BLOCK_B, BLOCK_M, BLOCK_N = 16, 16, 16
NUM_WARPS = 4
_BLOCKS = {"B": BLOCK_B, "M": BLOCK_M, "N": BLOCK_N}


@triton.jit
def load_tile(ptr, rows, cols, R, C):
    """The (rows, cols) tile of a row-major (R, C) array; 0 outside it."""
    mask = (rows[:, None] < R) & (cols[None, :] < C)
    return tl.load(ptr + rows[:, None] * C + cols[None, :], mask=mask, other=0.0)


@triton.jit
def store_tile(ptr, value, rows, cols, R, C):
    """Store ``value`` into the (rows, cols) tile of a row-major (R, C) array (inside only)."""
    mask = (rows[:, None] < R) & (cols[None, :] < C)
    tl.store(ptr + rows[:, None] * C + cols[None, :], value, mask=mask)


def launch(kernel, over: str, arrays: tuple, B: int, M: int, N: int, *scalars, **constexprs):
    """Run ``kernel(*arrays, B, M, N, *scalars, BB, BM, BN, **constexprs)`` on the grid
    ``over`` ("BM", "BN" or "MN": the two dimensions of the program grid, in order)."""
    size = {"B": B, "M": M, "N": N}
    grid = tuple(triton.cdiv(size[d], _BLOCKS[d]) for d in over)
    kernel[grid](
        *arrays,
        B,
        M,
        N,
        *scalars,
        BB=BLOCK_B,
        BM=BLOCK_M,
        BN=BLOCK_N,
        num_warps=NUM_WARPS,
        **constexprs,
    )
