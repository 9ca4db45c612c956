"""Files and what a person sees: atomic writes, provenance, progress, checkpoint files.

A utility part: any part of the package may import it, and it imports no other part.
"""

from rbfi.io.atomic import atomic_save_tensors, atomic_write_bytes, atomic_write_json, sha256_file
from rbfi.io.progress import Progress
from rbfi.io.provenance import versions

__all__ = [
    "Progress",
    "atomic_save_tensors",
    "atomic_write_bytes",
    "atomic_write_json",
    "sha256_file",
    "versions",
]
