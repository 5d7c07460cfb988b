"""Summarise a pytest-benchmark JSON: per group, each implementation's mean time, throughput,
peak memory and speed-up of tsvq over it (measured in the same run). Prints Markdown.

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
    lines = ["| group | impl | mean (ms) | throughput | peak extra memory (MiB) | tsvq speed-up |",
             "|---|---|---:|---:|---:|---:|"]
    for group in sorted(groups):
        rows = groups[group]
        tsvq_mean = next((r["stats"]["mean"] for r in rows if r["extra_info"].get("impl") == "tsvq"), None)
        for r in sorted(rows, key=lambda r: r["stats"]["mean"]):
            info, mean = r["extra_info"], r["stats"]["mean"]
            thr = next((_rate(v, k[: -len("_per_s")]) for k, v in info.items() if k.endswith("_per_s")), "")
            peak = info.get("peak_bytes", -1)
            ratio = f"{mean / tsvq_mean:.2f}x" if tsvq_mean and info.get("impl") != "tsvq" else ""
            lines.append(f"| {group} | {info.get('impl')} | {mean * 1e3:.3f} | {thr} | "
                         f"{peak / 2**20:.1f} | {ratio} |")
    machine = data.get("machine_info", {})
    lines.append("")
    lines.append(f"machine: {machine.get('cpu', {}).get('brand_raw', machine.get('processor', '?'))}, "
                 f"torch threads as run; speed-up = reference mean / tsvq mean")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1]))
