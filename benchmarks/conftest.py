"""Benchmark helpers: devices, peak memory, throughput. Run: pytest benchmarks/ (see README)."""
from __future__ import annotations

import math
import os
import statistics
import time

import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def cases(shapes, cpu_max_rows: int):
    """pytest params (device, shape) for every device; the CPU skips shapes with more rows."""
    for device in DEVICES:
        for shape in shapes:
            if device == "cpu" and shape[0] > cpu_max_rows:
                continue
            yield pytest.param(device, shape, id=f"{device}-" + "-".join(map(str, shape)))


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _rss_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


def peak_memory(fn, device) -> int:
    """Extra bytes at the peak of one call of ``fn``: CUDA allocator peak on GPUs; on Linux
    CPUs the resident-set high-water mark (reset through /proc/self/clear_refs) above the
    resident size before the call."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return -1
    base = _rss_bytes("VmRSS")
    fn()
    return max(_rss_bytes("VmHWM") - base, 0)


MIN_ROUND_S = 2e-3  # a round repeats a short call until it lasts about this long


def iterations_per_round(call) -> int:
    """Calls per timed round: 1 for calls of 2 ms or more, else enough calls to fill 2 ms, so that
    timer jitter and one-off stalls do not dominate the median of sub-millisecond calls."""
    call()  # warm-up (allocator, caches, lazy initialisation)
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    return max(1, min(1000, math.ceil(MIN_ROUND_S / max(once, 1e-7))))


def paired_speedup(fn, n_fn: int, tsvq_fn, rounds: int) -> float:
    """Median time per call of ``fn`` (``n_fn`` calls per round) over that of ``tsvq_fn``, both
    timed in alternating rounds (which one goes first alternates too), so that drift of the
    machine's speed between two benchmarks (tens of percent on a shared VM, over seconds) does
    not enter the ratio."""
    n_tsvq = iterations_per_round(tsvq_fn)
    times = {fn: [], tsvq_fn: []}
    for r in range(rounds):
        for f, n in ((fn, n_fn), (tsvq_fn, n_tsvq))[:: 1 if r % 2 else -1]:
            start = time.perf_counter()
            for _ in range(n):
                f()
            times[f].append((time.perf_counter() - start) / n)
    return statistics.median(times[fn]) / statistics.median(times[tsvq_fn])


def run(benchmark, fn, device, items: int, unit: str, rounds: int, paired=None, **info):
    """Time ``fn`` (synchronised), record throughput and peak memory in extra_info.

    ``rounds`` rounds of :func:`iterations_per_round` calls each; pytest-benchmark reports the
    time per call. ``paired``: for a baseline, the tsvq function it is compared with; then
    ``extra_info["paired_speedup"]`` is tsvq's speed-up over ``fn`` from :func:`paired_speedup`.
    """
    def synced(f):
        def call():
            out = f()
            sync(device)
            return out
        return call

    call = synced(fn)

    benchmark.extra_info.update(info)
    benchmark.extra_info["device"] = torch.cuda.get_device_name() if torch.device(device).type == "cuda" else (
        f"cpu x{torch.get_num_threads()}")
    benchmark.extra_info["peak_bytes"] = peak_memory(call, device)
    iterations = iterations_per_round(call)
    benchmark.extra_info["iterations"] = iterations
    benchmark.pedantic(call, rounds=rounds, warmup_rounds=1, iterations=iterations)
    if paired is not None:
        benchmark.extra_info["paired_speedup"] = paired_speedup(call, iterations, synced(paired), rounds)
    benchmark.extra_info[f"{unit}_per_s"] = items / benchmark.stats.stats.median


@pytest.fixture(autouse=True)
def _threads():
    # Benchmarks use every core the machine offers, as the kernels do.
    torch.set_num_threads(int(os.environ.get("TSVQ_BENCH_THREADS", os.cpu_count() or 1)))
    yield
