"""Benchmark helpers: devices, peak memory, throughput. Run: pytest benchmarks/ (see README)."""
from __future__ import annotations

import os

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


def run(benchmark, fn, device, items: int, unit: str, rounds: int, **info):
    """Time ``fn`` (synchronised), record throughput and peak memory in extra_info."""
    def call():
        out = fn()
        sync(device)
        return out

    benchmark.extra_info.update(info)
    benchmark.extra_info["device"] = torch.cuda.get_device_name() if torch.device(device).type == "cuda" else (
        f"cpu x{torch.get_num_threads()}")
    benchmark.extra_info["peak_bytes"] = peak_memory(call, device)
    benchmark.pedantic(call, rounds=rounds, warmup_rounds=1, iterations=1)
    benchmark.extra_info[f"{unit}_per_s"] = items / benchmark.stats.stats.median


@pytest.fixture(autouse=True)
def _threads():
    # Benchmarks use every core the machine offers, as the kernels do.
    torch.set_num_threads(int(os.environ.get("TSVQ_BENCH_THREADS", os.cpu_count() or 1)))
    yield
