"""The ``tsvq`` command line."""
from __future__ import annotations

import argparse
import json
import sys


def _info(args) -> int:
    import tsvq

    info = tsvq.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"tsvq {tsvq.__version__}")
    for key, value in info.items():
        print(f"  {key:22s} {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsvq", description="Vector-quantized models for time series.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="print what was built (torch, CUDA kernels, arch list, OpenMP)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_info)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
