"""The README's kernel section is rendered from the benchmarks' JSON: ratios of the measured
times, the machine and the command, or a note that nothing was measured yet."""

import json

from rbfi.experiments.readme import sections

MACHINE = {
    "cpu": "Test CPU 9000",
    "cores": 2,
    "threads": 2,
    "simd_width": 16,
    "torch": "2.13.0+cpu",
    "date": "2026-12-01T15:00:00Z",
    "command": "python benchmarks/bench_kernels.py --quick --threads 2",
}


def _write(root, name, data):
    bench = root / "benchmarks" / "results"
    bench.mkdir(parents=True, exist_ok=True)
    (bench / f"{name}.json").write_text(json.dumps(data))


def test_kernel_section_quotes_ratios_of_the_measured_times_and_the_machine(tmp_path):
    (tmp_path / "results").mkdir()
    kernels = {
        "machine": MACHINE,
        "network": "784-512-512-512-10 (^v^v)",
        "batch": 100,
        "median_ms": {"naive": 2000.0, "fused": 25.0, "relu": 4.0},
    }
    interval = {
        "machine": {**MACHINE, "command": "python benchmarks/bench_interval.py --threads 2"},
        "batches": {
            "100": {"median_ms": {"forward": 5.0, "bounds": 9.0, "train": 30.0, "certified": 69.0}},
            "1000": {
                "median_ms": {"forward": 40.0, "bounds": 84.0, "train": 300.0, "certified": 750.0}
            },
        },
    }
    _write(tmp_path, "kernels-cpu", kernels)
    _write(tmp_path, "interval-cpu", interval)
    text = sections(tmp_path / "results")["kernels"]
    assert "**80× faster** than the naive layer (2000 ms)" in text  # 2000 / 25
    assert "**6.2×** the time of a same-size ReLU MLP (4.0 ms)" in text  # 25 / 4 = 6.25
    # 9 / 5, 84 / 40; 69 / 30, 750 / 300
    assert "**1.8×** the plain forward at batch 100 and **2.1×** at batch 1000" in text
    assert "2.3× a plain one at batch 100 and 2.5× at batch 1000" in text
    assert "Test CPU 9000, 2 cores, 2 torch threads, C kernel SIMD width 16" in text
    assert "`python benchmarks/bench_kernels.py --quick --threads 2`" in text
    assert "on the same machine" in text

    interval["machine"]["threads"] = 1
    _write(tmp_path, "interval-cpu", interval)
    assert "1 torch threads" in sections(tmp_path / "results")["kernels"]


def test_kernel_section_without_results_says_how_to_measure(tmp_path):
    (tmp_path / "results").mkdir()
    assert "not measured yet" in sections(tmp_path / "results")["kernels"]
