"""Compile ``rbfi_cpu.c`` with the machine's C compiler at first use and load it with ctypes.

The shared library goes to a cache directory (``$RBFI_CACHE_DIR``, default
``~/.cache/rbfi/kernels``) under a name keyed by a hash of the source, the flags, the compiler's
version and the CPU (``-march=native`` depends on it), so a rebuild happens only when one of them
changes. The library is written to a temporary file and renamed into place, so processes that
compile at the same time never see a half-written file. The compiler is ``$RBFI_CC``, else
``$CC``, else ``gcc``; ``$RBFI_CFLAGS`` replaces the default flag sets (e.g. to build for AVX2
on an AVX-512 machine). When the source is missing or unreadable (a broken install), the
compiler is unusable, or no flag set compiles, :func:`load_library` warns once and returns a
result without a library (its ``errors`` say why); callers then fall back to the chunked torch
backend.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("rbfi.ops")

SOURCE = Path(__file__).with_name("rbfi_cpu.c")
# Tried in order; the first that compiles and loads wins. -march=native gives AVX2 + FMA (or
# AVX-512) where the CPU has them; the later sets keep the kernel usable on odd toolchains.
FLAG_SETS: tuple[tuple[str, ...], ...] = (
    ("-O3", "-march=native", "-fopenmp"),
    ("-O3", "-fopenmp"),
    ("-O3",),
)
COMMON_FLAGS = ("-std=gnu11", "-shared", "-fPIC", "-ffp-contract=fast")
COMPILE_TIMEOUT_S = 300


@dataclass
class BuildResult:
    """What :func:`load_library` found: the library (or None) and how it got there."""

    lib: ctypes.CDLL | None
    path: str | None = None
    compiler: str = ""
    compiler_version: str = ""
    flags: tuple[str, ...] = ()
    compile_seconds: float | None = None  # None when the library came from the cache
    load_seconds: float = 0.0
    cached: bool = False
    simd_width: int | None = None
    openmp: bool = False
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "available": self.lib is not None,
            "path": self.path,
            "compiler": self.compiler,
            "compiler_version": self.compiler_version,
            "flags": " ".join(self.flags),
            "compile_seconds": self.compile_seconds,
            "load_seconds": self.load_seconds,
            "cached": self.cached,
            "simd_width": self.simd_width,
            "openmp": self.openmp,
            "errors": list(self.errors),
        }


def flag_sets() -> tuple[tuple[str, ...], ...]:
    """``$RBFI_CFLAGS`` (one flag set, e.g. "-O3 -mavx2 -mfma -fopenmp") or FLAG_SETS."""
    env = os.environ.get("RBFI_CFLAGS")
    return (tuple(env.split()),) if env else FLAG_SETS


def compiler_command() -> str:
    """The C compiler to use: ``$RBFI_CC``, else ``$CC``, else ``gcc``."""
    return os.environ.get("RBFI_CC") or os.environ.get("CC") or "gcc"


def cache_dir() -> Path:
    """Where built kernels live: ``$RBFI_CACHE_DIR``, else ``~/.cache/rbfi/kernels``."""
    env = os.environ.get("RBFI_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "rbfi" / "kernels"


def _cpu_signature() -> str:
    """CPU model and feature flags (what -march=native depends on)."""
    wanted = ("model name", "flags", "Features", "CPU part")
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() + platform.machine()
    seen: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip()
        if key in wanted and key not in seen:
            seen[key] = value.strip()
    return platform.machine() + "|" + "|".join(f"{k}={v}" for k, v in sorted(seen.items()))


def _writable_dir(cache: Path) -> Path:
    """``cache`` if it can be created and written, else a per-user directory under the system's
    temporary directory (a read-only home must not cost the fast kernel)."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if os.access(cache, os.W_OK):
            return cache
    except OSError:
        pass
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = Path(tempfile.gettempdir()) / f"rbfi-kernels-{uid}"
    logger.info("kernel cache %s is not writable; using %s", cache, fallback)
    return fallback


def _compiler_version(cc: str) -> str:
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise OSError(out.stderr.strip() or f"{cc} --version failed")
    return out.stdout.strip()


def _declare(lib: ctypes.CDLL) -> None:
    """Argument types of the exported functions (see rbfi_cpu.c)."""
    p, i64, i32, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
    lib.rbfi_forward.argtypes = [p, p, p, i64, i64, i64, p, p, i32]
    lib.rbfi_forward.restype = i32
    lib.rbfi_forward_layout.argtypes = [p, p, p, i64, i64, i64, p, p, i32, i32]
    lib.rbfi_forward_layout.restype = i32
    lib.rbfi_backward_pseudo.argtypes = [p, p, p, p, p, i64, i64, i64, f32, f32, p, p, p, i32, p]
    lib.rbfi_backward_pseudo.restype = i32
    lib.rbfi_backward_pseudo_layout.argtypes = [
        *(p,) * 5,
        i64,
        i64,
        i64,
        f32,
        f32,
        p,
        p,
        p,
        i32,
        p,
        i32,
    ]
    lib.rbfi_backward_pseudo_layout.restype = i32
    lib.rbfi_backward_argmax.argtypes = [p, p, p, p, p, i64, i64, i64, p, p, p, i32]
    lib.rbfi_backward_argmax.restype = i32
    lib.rbfi_interval_forward.argtypes = [p, p, p, p, i64, i64, i64, p, p, p, p, i32]
    lib.rbfi_interval_forward.restype = i32
    lib.rbfi_interval_forward_layout.argtypes = [p, p, p, p, i64, i64, i64, p, p, p, p, i32, i32]
    lib.rbfi_interval_forward_layout.restype = i32
    lib.rbfi_interval_backward_pseudo.argtypes = [
        *(p,) * 8,
        *(i64,) * 3,
        f32,
        *(p,) * 4,
        i32,
    ]
    lib.rbfi_interval_backward_pseudo.restype = i32
    lib.rbfi_interval_backward_argmax.argtypes = [*(p,) * 8, *(i64,) * 3, *(p,) * 4, i32]
    lib.rbfi_interval_backward_argmax.restype = i32
    lib.rbfi_lp_forward.argtypes = [p, p, i64, i64, i64, f32, p, i32]
    lib.rbfi_lp_forward.restype = i32
    lib.rbfi_lp_backward.argtypes = [p, p, p, p, i64, i64, i64, f32, p, p, i32]
    lib.rbfi_lp_backward.restype = i32
    lib.rbfi_lp_math.argtypes = [p, f32, p, p, i64]
    lib.rbfi_lp_math.restype = None
    lib.rbfi_im2row.argtypes = [p, *(i64,) * 9, p, i32]
    lib.rbfi_im2row.restype = i32
    lib.rbfi_row2im.argtypes = [p, *(i64,) * 9, p, i32]
    lib.rbfi_row2im.restype = i32
    lib.rbfi_exp2.argtypes = [p, p, i64]
    lib.rbfi_exp2.restype = None
    lib.rbfi_simd_width.argtypes = []
    lib.rbfi_simd_width.restype = i32
    lib.rbfi_openmp.argtypes = []
    lib.rbfi_openmp.restype = i32


def _compile(cc: str, flags: tuple[str, ...], source: Path, target: Path) -> float:
    """Compile ``source`` into ``target`` atomically (temp file + rename); returns seconds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".so.tmp", dir=target.parent)
    os.close(fd)
    try:
        t0 = time.perf_counter()
        cmd = [cc, *flags, *COMMON_FLAGS, "-o", tmp, str(source)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        seconds = time.perf_counter() - t0
        if out.returncode != 0:
            raise OSError(f"{' '.join(cmd)} failed:\n{out.stderr.strip()[-2000:]}")
        os.replace(tmp, target)
        return seconds
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def build(
    cc: str,
    cache: str,
    flag_options: tuple[tuple[str, ...], ...] = FLAG_SETS,
    source_path: str = str(SOURCE),
) -> BuildResult:
    """Compile ``source_path`` (or find it built in ``cache``) and load it: the first of
    ``flag_options`` that works.

    Cached per arguments, so each configuration compiles (and warns) at most once a process.
    Never raises for want of a kernel: every failure lands in ``errors`` with one warning.
    """
    result = BuildResult(lib=None, compiler=cc)
    try:
        source = Path(source_path).read_bytes()
    except OSError as err:
        result.errors.append(f"kernel source unreadable ({type(err).__name__}: {err})")
        _warn_fallback(result)
        return result
    try:
        result.compiler_version = _compiler_version(cc).splitlines()[0]
    except (OSError, subprocess.SubprocessError) as err:
        result.errors.append(f"compiler {cc!r} unusable: {err}")
        _warn_fallback(result)
        return result
    cache_path = _writable_dir(Path(cache))
    for flags in flag_options:
        all_flags = (*flags, *COMMON_FLAGS)
        key = hashlib.sha256(
            b"\0".join(
                [
                    source,
                    " ".join(all_flags).encode(),
                    result.compiler_version.encode(),
                    _cpu_signature().encode(),
                ]
            )
        ).hexdigest()[:16]
        target = cache_path / f"rbfi_cpu-{key}.so"
        try:
            compile_seconds = None
            if not target.exists():
                compile_seconds = _compile(cc, flags, Path(source_path), target)
            t0 = time.perf_counter()
            lib = ctypes.CDLL(str(target))
            _declare(lib)
            result.load_seconds = time.perf_counter() - t0
        except (OSError, subprocess.SubprocessError, AttributeError) as err:
            result.errors.append(str(err))
            continue
        result.lib, result.path, result.flags = lib, str(target), all_flags
        result.compile_seconds, result.cached = compile_seconds, compile_seconds is None
        result.simd_width, result.openmp = lib.rbfi_simd_width(), bool(lib.rbfi_openmp())
        if result.cached:
            logger.info(
                "loaded cached CPU kernel %s (SIMD width %d, OpenMP %s)",
                target,
                result.simd_width,
                result.openmp,
            )
        else:
            logger.info(
                "compiled rbfi_cpu.c in %.2f s with %s %s (SIMD width %d, OpenMP %s) -> %s",
                compile_seconds,
                cc,
                " ".join(flags),
                result.simd_width,
                result.openmp,
                target,
            )
        return result
    _warn_fallback(result)
    return result


def _warn_fallback(result: BuildResult) -> None:
    msg = (
        "rbfi.ops: could not build the CPU kernel, falling back to the chunked torch backend "
        "(slower). " + " | ".join(e.splitlines()[0] for e in result.errors if e)
    )
    warnings.warn(msg, RuntimeWarning, stacklevel=3)  # the one message (no log record too)


def load_library() -> BuildResult:
    """The CPU kernel for the current ``$RBFI_CC``, ``$RBFI_CACHE_DIR``, ``$RBFI_CFLAGS`` and
    :data:`SOURCE` (built at the first call)."""
    return build(compiler_command(), str(cache_dir()), flag_sets(), str(SOURCE))
