"""Metric tables: ``metrics.md`` of a run and the terminal table of the CLI."""
from __future__ import annotations

import math


def metrics_markdown(title: str, metrics: dict) -> str:
    """``metrics`` as a Markdown document with heading ``title`` and a two-column table."""
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items())
    return f"# {title}\n\n| metric | value |\n|---|---:|\n{rows}\n"


def run_title(cfg) -> str:
    """``"<model> on <dataset> (preset <p>, seed <s>)"`` of a stage-1 run config."""
    return f"{cfg.model} on {cfg.dataset} (preset {cfg.preset}, seed {cfg.seed})"


def format_table(metrics: dict) -> str:
    """``metrics`` as aligned ``name  value`` lines (floats with 4 decimals)."""
    width = max(len(k) for k in metrics)
    lines = []
    for k, v in metrics.items():
        if isinstance(v, float):
            v = f"{v:.4f}" if math.isfinite(v) else str(v)
        lines.append(f"  {k:<{width}}  {v}")
    return "\n".join(lines)
