"""``rbfi doctor`` (issue 14): each value checked against an independent source (the
interpreter, torch, package metadata, the data file's own MD5), the text fits one screen."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import sys
from pathlib import Path

import pytest
import torch

import rbfi
import rbfi.data
import rbfi.ops
from rbfi.cli import main
from rbfi.ops import _build

KEYS = {"rbfi", "python", "torch", "threads", "kernel", "triton", "cuda", "data", "packages"}
OPTIONAL = ("torchattacks", "autoattack", "foolbox", "art", "ray", "scipy")


def doctor_json(capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["doctor", "--json"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    return json.loads(out.out)


def test_json_has_every_section_and_true_values(capsys: pytest.CaptureFixture[str]) -> None:
    report = doctor_json(capsys)
    assert KEYS <= set(report)
    assert report["rbfi"]["version"] == rbfi.__version__
    assert report["python"]["version"] == platform.python_version()
    assert report["python"]["executable"] == sys.executable
    assert report["torch"]["version"] == torch.__version__
    assert report["torch"]["cuda"] == torch.version.cuda
    threads = report["threads"]
    assert threads["torch"] == torch.get_num_threads()
    assert {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "interop", "cpus"} <= set(threads)
    kernel = report["kernel"]
    x = torch.rand(2, 3)
    assert kernel["auto"] == rbfi.ops.auto_backend(x, x, x)
    assert {"compiler", "flags", "simd_width", "cache_dir", "fallback_reason"} <= set(kernel)
    if kernel["cpu_kernel"]:  # the library named is the one this process loaded
        assert kernel["auto"] == "cpu" and Path(kernel["library"]).is_file()
        assert kernel["simd_width"] >= 1 and kernel["fallback_reason"] is None
    assert report["cuda"]["available"] == torch.cuda.is_available()
    assert {"available", "version"} <= set(report["triton"]) or report["triton"]["error"]
    for name in OPTIONAL:
        assert name in report["packages"]
    assert report["packages"]["scipy"] == importlib.metadata.version("scipy")
    assert report["packages"]["foolbox"] is None or isinstance(report["packages"]["foolbox"], str)


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
