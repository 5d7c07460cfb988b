"""Summarise a pytest-benchmark JSON: per group, each implementation's median time, throughput,
peak memory and speed-up of tsvq over it (measured in the same run). Prints Markdown.

The median, not the mean: on a CPU a few rounds can pay for page faults of fresh allocations
(whether glibc returns a large block to the OS depends on the heap's history), which moves the
mean of short runs by up to 5x for torch and tsvq alike.

    python benchmarks/summarize.py benchmarks/results/<date>-<machine>.json
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


def _rate(value: float, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1, "")):
        if value >= scale:
            return f"{value / scale:.1f} {prefix}{unit}/s"
    return f"{value:.2f} {unit}/s"


def summarize(path: str) -> str:
    with open(path) as f:
        data = json.load(f)
    groups = defaultdict(list)
    for b in data["benchmarks"]:
        groups[b["group"]].append(b)
    lines = ["| group | impl | median (ms) | throughput | peak extra memory (MiB) | tsvq speed-up |",
             "|---|---|---:|---:|---:|---:|"]
    for group in sorted(groups):
        rows = groups[group]
        tsvq_median = next((r["stats"]["median"] for r in rows if r["extra_info"].get("impl") == "tsvq"), None)
        for r in sorted(rows, key=lambda r: r["stats"]["median"]):
            info, median = r["extra_info"], r["stats"]["median"]
            thr = next((_rate(v, k[: -len("_per_s")]) for k, v in info.items() if k.endswith("_per_s")), "")
            peak = info.get("peak_bytes")
            peak = "" if peak is None or peak < 0 else f"{peak / 2**20:.1f}"
            ratio = ""
            if "paired_speedup" in info:
                ratio = f"{info['paired_speedup']:.2f}x (paired)"
            elif tsvq_median and info.get("impl") != "tsvq":
                ratio = f"{median / tsvq_median:.2f}x"
            lines.append(f"| {group} | {info.get('impl')} | {median * 1e3:.3f} | {thr} | {peak} | {ratio} |")
    machine = data.get("machine_info", {})
    lines.append("")
    lines.append(f"machine: {machine.get('cpu', {}).get('brand_raw', machine.get('processor', '?'))}, "
                 f"torch threads as run; speed-up = reference median / tsvq median, or, marked (paired), the "
                 f"same ratio from rounds of both timed alternately (harness.paired_speedup)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1]))
