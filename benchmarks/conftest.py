"""Benchmark helpers: devices, and one pytest-benchmark row per implementation of a
:class:`harness.Case` (the comparisons and timing rules shared with ``benchmarks/targets.py``).
Run: pytest benchmarks/ (see README)."""
from __future__ import annotations

import os

import pytest
import torch

from harness import Case, iterations_per_round, paired_speedup, peak_memory, synced

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def cases(shapes, cpu_max_rows: int):
    """pytest params (device, shape) for every device; the CPU skips shapes with more rows."""
    for device in DEVICES:
        for shape in shapes:
            if device == "cpu" and shape[0] > cpu_max_rows:
                continue
            yield pytest.param(device, shape, id=f"{device}-" + "-".join(map(str, shape)))


def run_case(benchmark, case: Case, impl: str, device, rounds: int) -> None:
    """Time ``impl`` of ``case`` ("tsvq" or a baseline name) as one pytest-benchmark row, with
    throughput, peak memory and, for a baseline, the paired speed-up of tsvq in extra_info.

    ``rounds`` rounds of :func:`harness.iterations_per_round` calls each; pytest-benchmark reports
    the time per call. For a baseline, ``extra_info["paired_speedup"]`` is tsvq's speed-up over it
    from rounds of both timed alternately (:func:`harness.paired_speedup`).
    """
    call = synced(case.tsvq if impl == "tsvq" else case.baselines[impl], device)
    benchmark.group = case.group
    benchmark.extra_info.update(case.info, impl=impl)
    benchmark.extra_info["device"] = torch.cuda.get_device_name() if torch.device(device).type == "cuda" else (
        f"cpu x{torch.get_num_threads()}")
    benchmark.extra_info["peak_bytes"] = peak_memory(call, device)
    iterations = iterations_per_round(call)
    benchmark.extra_info["iterations"] = iterations
    benchmark.pedantic(call, rounds=rounds, warmup_rounds=1, iterations=iterations)
    if impl != "tsvq":
        benchmark.extra_info["paired_speedup"] = paired_speedup(call, iterations, synced(case.tsvq, device), rounds)
    benchmark.extra_info[f"{case.unit}_per_s"] = case.items / benchmark.stats.stats.median


@pytest.fixture(autouse=True)
def _threads():
    # Benchmarks use every core the machine offers, as the kernels do.
    torch.set_num_threads(int(os.environ.get("TSVQ_BENCH_THREADS", os.cpu_count() or 1)))
    yield


@pytest.fixture(autouse=True)
def _needs_extension():
    import tsvq

    if not tsvq.has_ops():
        pytest.skip("tsvq._C not built: nothing to compare with the reference")
