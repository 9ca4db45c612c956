"""``rbfi doctor``: what this installation runs on, in one screen (or ``--json``), for bug
reports: Python, torch and its build, threads and the OpenMP wait policy, the kernel backend
``backend="auto"`` uses (compiler, flags, SIMD width, cache path, or why it fell back), Triton
and CUDA, the MNIST data wheel and where each dataset is found, and the optional packages with
their versions."""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

from rbfi.cli.options import add_common

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the installed rbfi package
HELP = "describe this installation (paste its output into bug reports)"
WIDTH = 100  # long values (compiler errors, paths) are cut to keep one screen


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help=HELP, description=HELP)
    add_common(p, "threads", "json")
    p.set_defaults(handler=run)


def data_report() -> dict:
    """Where the MNIST pickle of the data wheel is and whether its MD5 is the known one, and
    per dataset where its files would be read from without --data-dir (its environment
    variable, or MNIST's wheel), or why they are not found."""
    from rbfi.data import DATASETS, PICKLE_MD5, DataError, file_md5, find_mnist_pickle, locate

    report: dict = {"RBFI_MNIST_DIR": os.environ.get("RBFI_MNIST_DIR")}
    datasets = {}
    for name in DATASETS:
        try:
            datasets[name] = {"found": True, "location": locate(name), "error": None}
        except DataError as err:
            datasets[name] = {"found": False, "location": None, "error": str(err)}
    report["datasets"] = datasets
    try:
        path = find_mnist_pickle()
    except DataError as err:
        return {**report, "found": False, "path": None, "md5_ok": None, "error": str(err)}
    return {**report, "found": True, "path": str(path), "md5_ok": file_md5(path) == PICKLE_MD5}


def cuda_report() -> dict:
    import torch

    available = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"available": available, "built_for": torch.version.cuda, "devices": devices}


def gather() -> dict:
    """Everything ``rbfi doctor`` reports, as plain JSON-able values."""
    from rbfi._version import __version__
    from rbfi.io import provenance
    from rbfi.ops import kernel_info

    with warnings.catch_warnings():  # a fallback is reported below, not warned about
        warnings.simplefilter("ignore", RuntimeWarning)
        kernels = kernel_info()
    cpu = kernels["cpu"]
    kernel = {
        "auto": kernels["auto"],
        "cpu_kernel": cpu["available"],
        "fallback_reason": None if cpu["available"] else "; ".join(cpu["errors"]),
        **{k: cpu[k] for k in ("compiler", "compiler_version", "flags", "simd_width", "openmp")},
        "library": cpu["path"],
        "cached": cpu["cached"],
        "compile_seconds": cpu["compile_seconds"],
        "cache_dir": cpu["cache_dir"],
        "source": cpu["source"],
    }
    triton = dict(kernels["triton"], TRITON_INTERPRET=os.environ.get("TRITON_INTERPRET"))
    return {
        "rbfi": {"version": __version__, "location": str(PACKAGE_DIR)},
        "python": provenance.python_info(),
        "torch": provenance.torch_build(),
        "threads": provenance.thread_settings(),
        "kernel": kernel,
        "triton": triton,
        "cuda": cuda_report(),
        "data": data_report(),
        "packages": provenance.package_versions(),
    }


def _cut(text: object, width: int = WIDTH) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def render(report: dict) -> list[str]:
    """The one-screen text form of :func:`gather`'s report."""
    from rbfi.data import DATASETS

    py, tb, th, k = report["python"], report["torch"], report["threads"], report["kernel"]
    env = ", ".join(f"{name}={th[name] or 'unset'}" for name in list(th)[3:])
    lines = [
        f"rbfi        {report['rbfi']['version']}  ({report['rbfi']['location']})",
        f"python      {py['version']} {py['implementation']}  ({py['executable']})",
        f"platform    {_cut(py['platform'])}",
        f"torch       {tb['version']}  (CUDA build: {tb['cuda'] or 'none'}, "
        f"parallel: {tb['parallel_backend']}, CPU capability: {tb['cpu_capability']})",
        f"threads     torch {th['torch']} (interop {th['interop']}) on {th['cpus']} usable CPUs",
        f"            {env}",
        f"kernel      backend='auto' runs on: {k['auto']}",
    ]
    if k["cpu_kernel"]:
        built = "from the cache" if k["cached"] else f"compiled in {k['compile_seconds']:.1f} s"
        lines += [
            f"  compiler  {_cut(k['compiler_version'] or k['compiler'])}",
            f"  flags     {k['flags']}",
            f"  SIMD      {k['simd_width']} floats a vector, OpenMP {('off', 'on')[k['openmp']]}",
            f"  library   {_cut(k['library'])}  ({built})",
        ]
    else:
        lines += [
            "  C kernel  not built: fell back to the chunked torch backend (slower)",
            f"  reason    {_cut(k['fallback_reason'])}",
            f"  compiler  {k['compiler']}  cache {_cut(k['cache_dir'])}",
        ]
    lines.append(f"  source    {_cut(k['source'])}")
    tr, cuda, data = report["triton"], report["cuda"], report["data"]
    if tr["available"]:
        triton = f"{tr['version']}  (TRITON_INTERPRET={tr['TRITON_INTERPRET'] or 'unset'})"
    else:
        triton = f"not usable: {_cut(tr['error'], WIDTH - 24)}"
    lines.append(f"triton      {triton}")
    devices = ", ".join(cuda["devices"]) or "no devices"
    lines.append(f"cuda        {'available: ' + devices if cuda['available'] else 'not available'}")
    if data["found"]:
        md5 = "md5 ok" if data["md5_ok"] else "md5 WRONG: reinstall the data wheel"
        lines.append(f"data        {_cut(data['path'])}  ({md5})")
    else:
        lines.append(f"data        not found: {_cut(data['error'], WIDTH - 24)}")
    if data["RBFI_MNIST_DIR"]:
        lines.append(f"            RBFI_MNIST_DIR={_cut(data['RBFI_MNIST_DIR'])} (used instead)")
    for k, (name, found) in enumerate(data["datasets"].items()):
        env = DATASETS[name].env
        if not found["found"] and os.environ.get(env):
            where = f"{env}: {found['error']}"
        elif not found["found"]:
            where = f"not found: give --data-dir DIR or set {env}"
        elif found["location"] == data["path"]:
            where = "the data wheel (above)"
        else:
            where = found["location"]
        heading = "datasets" if k == 0 else ""
        lines.append(f"{heading:<12}{name:<15}{_cut(where, WIDTH - 27)}")
    packages = [f"{name} {version or '-'}" for name, version in report["packages"].items()]
    lines.append("packages    " + ", ".join(packages[:6]))
    lines.append("            " + ", ".join(packages[6:]))
    return lines


def run(args: argparse.Namespace) -> int:
    report = gather()
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print("\n".join(render(report)))
    return 0
