"""``rbfi doctor`` (issue 14): each value checked against an independent source (the
interpreter, torch, package metadata, the data file's own MD5), the text fits one screen."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

import rbfi
import rbfi.data
from rbfi.cli import main
from rbfi.ops import _build

KEYS = {"rbfi", "python", "torch", "threads", "kernel", "triton", "cuda", "data", "packages"}
OPTIONAL = ("torchattacks", "autoattack", "foolbox", "art", "ray", "scipy")


def doctor_json(capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["doctor", "--json"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    return json.loads(out.out)


def metadata_version(name: str) -> str | None:
    """A distribution's version from its ``*.dist-info/METADATA`` file found on sys.path by
    hand (first match wins, as for imports): not through importlib.metadata, which doctor uses."""
    prefix = name.replace("-", "_").lower()
    for entry in sys.path:
        folder = Path(entry or ".")
        if not folder.is_dir():
            continue
        for info in sorted(folder.iterdir()):
            stem = info.name.lower()
            if stem.endswith(".dist-info") and stem.startswith(prefix + "-"):
                for line in (info / "METADATA").read_text().splitlines():
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
    return None


def usable_cpus() -> int:
    """The CPUs this process may run on, from /proc/self/status (e.g. '0-1,4' -> 3)."""
    status = Path("/proc/self/status").read_text()
    allowed = status.split("Cpus_allowed_list:")[1].split()[0]
    count = 0
    for part in allowed.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def expected_simd_width(flags: str) -> int | None:
    """Floats per vector of a kernel built with ``-march=native`` here (rbfi_cpu.c: 16 with
    AVX-512F, 8 with AVX2, else 4), from the CPU's flags in /proc/cpuinfo; None otherwise."""
    if "-march=native" not in flags.split():
        return None
    cpu = set(Path("/proc/cpuinfo").read_text().split())
    return 16 if "avx512f" in cpu else 8 if "avx2" in cpu else 4


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc")
def test_json_reports_facts_checked_independently(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each value against a source doctor does not read: the interpreter's version tuple and
    the binary the kernel runs (/proc/self/exe), torch's and scipy's METADATA files, a thread
    count set here, the CPU list of /proc/self/status, a fake distribution placed on sys.path,
    the kernel library mapped into this process and the SIMD width the CPU's flags imply."""
    fake = tmp_path / "foolbox-9.8.7.dist-info"
    fake.mkdir()
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: foolbox\nVersion: 9.8.7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    threads = torch.get_num_threads()
    chosen = next(k for k in (1, 2, 3) if k not in (threads, torch.get_num_interop_threads()))
    torch.set_num_threads(chosen)
    try:
        report = doctor_json(capsys)
        assert report["threads"]["torch"] == chosen
    finally:
        torch.set_num_threads(threads)
    assert KEYS <= set(report)
    assert report["rbfi"]["version"] == rbfi.__version__
    assert Path(report["rbfi"]["location"]) == Path(rbfi.__file__).resolve().parent
    assert report["python"]["version"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert Path(report["python"]["executable"]).resolve() == Path("/proc/self/exe").resolve()
    assert report["torch"]["version"] == metadata_version("torch")
    assert (report["torch"]["cuda"] is None) == ("+cpu" in metadata_version("torch"))
    assert report["threads"]["cpus"] == usable_cpus()
    assert {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "interop"} <= set(report["threads"])
    assert report["packages"]["foolbox"] == "9.8.7"  # the fake one, first on sys.path
    assert report["packages"]["scipy"] == metadata_version("scipy")
    for name in OPTIONAL:
        assert name in report["packages"]
    kernel = report["kernel"]
    assert {"compiler", "flags", "simd_width", "cache_dir", "fallback_reason"} <= set(kernel)
    if kernel["cpu_kernel"]:  # the library named is one this process has mapped, built here
        assert kernel["auto"] == "cpu" and kernel["fallback_reason"] is None
        library = Path(kernel["library"]).resolve()
        assert str(library) in Path("/proc/self/maps").read_text()
        assert library.parent == Path(kernel["cache_dir"]).resolve()
        assert kernel["simd_width"] == (
            expected_simd_width(kernel["flags"]) or kernel["simd_width"]
        )
        assert kernel["simd_width"] in (4, 8, 16)
    else:
        assert kernel["auto"] == "chunked" and kernel["fallback_reason"]
    assert report["cuda"]["available"] is False or report["cuda"]["devices"]
    assert {"available", "version"} <= set(report["triton"]) or report["triton"]["error"]


def test_data_wheel_md5_is_computed_not_assumed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = doctor_json(capsys)["data"]
    assert data["found"], data  # install.sh installs the data wheel
    digest = hashlib.md5(Path(data["path"]).read_bytes()).hexdigest()
    assert data["md5_ok"] is (digest == rbfi.data.PICKLE_MD5) is True
    monkeypatch.setattr(rbfi.data, "PICKLE_MD5", "0" * 32)  # a file that does not match
    assert doctor_json(capsys)["data"]["md5_ok"] is False
    assert main(["doctor"]) == 0
    assert "md5 WRONG" in capsys.readouterr().out


def test_wait_policy_and_threads_come_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = doctor_json(capsys)["threads"]
    assert threads["OMP_WAIT_POLICY"] == "PASSIVE" and threads["OMP_NUM_THREADS"] is None
    assert main(["doctor"]) == 0
    assert "OMP_WAIT_POLICY=PASSIVE" in capsys.readouterr().out


def test_text_fits_one_screen(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 10 <= len(lines) <= 40
    assert lines[0].startswith(f"rbfi        {rbfi.__version__}")
    for heading in ("python", "torch", "threads", "kernel", "triton", "cuda", "data", "packages"):
        assert any(line.startswith(heading) for line in lines), heading


def test_a_fallback_is_reported_with_its_reason(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_build, "SOURCE", tmp_path / "missing.c")
    monkeypatch.setenv("RBFI_CACHE_DIR", str(tmp_path / "cache"))
    kernel = doctor_json(capsys)["kernel"]  # doctor_json: nothing on stderr, no warning
    assert kernel["auto"] == "chunked" and kernel["cpu_kernel"] is False
    assert "unreadable" in kernel["fallback_reason"] and "missing.c" in kernel["fallback_reason"]
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "fell back to the chunked torch backend" in text
    assert len(text.splitlines()) <= 40
