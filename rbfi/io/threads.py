"""Torch's thread count for one block of code (it is process-wide state).

Float summation orders depend on the thread count, so a task that must give the same numbers
wherever it runs fixes it; the caller's count is put back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(max(1, n))`` and restore the previous count
    after it (also on an exception). ``n=None`` leaves the count as it is."""
    import torch

    if n is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(saved)
