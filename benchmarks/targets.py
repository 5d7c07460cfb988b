"""The project's speed targets on this machine, one table: each target's tsvq call against its
baseline in paired rounds (outputs checked equal first), the speed-up and whether it is met.

    python benchmarks/targets.py [--device cpu|cuda] [--rounds 10] [-k TEXT] [--json PATH]

On a CUDA device the targets are the GPU ones (stated for an H100); on a CPU every target is 1x
(never slower than the baseline). The full shape grids are ``pytest benchmarks/``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness import format_targets, run_targets

from tsvq.engine.run_dir import atomic_write


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="targets.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device to time on (default cpu)")
    parser.add_argument("--rounds", type=int, default=10, help="paired timing rounds per target (default 10)")
    parser.add_argument("-k", default=None, metavar="TEXT", help="only the targets whose name contains TEXT")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows to PATH as JSON")
    args = parser.parse_args(argv)
    try:
        if args.json and Path(args.json).is_dir():  # checked before the timing, not after
            raise ValueError(f"--json must be a file name, got the directory {args.json}")
        rows = run_targets(args.device, args.rounds, args.k,
                           progress=lambda name: print(f"timing {name} ...", file=sys.stderr, flush=True))
    except ValueError as e:
        print(f"targets.py: error: {e}", file=sys.stderr)
        return 2
    print(format_targets(rows))
    print(f"\ndevice {args.device}, {args.rounds} paired rounds; speed-up = baseline median / tsvq median; target: "
          + ("the GPU target (stated for an H100)" if args.device == "cuda" else "1x (never slower on a CPU)"))
    if args.json:
        atomic_write(Path(args.json), json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
