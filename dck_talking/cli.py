"""The `dck-talking` command."""

from __future__ import annotations

import argparse
import sys

from .errors import DCKError


def _bench(args: argparse.Namespace) -> None:
    from . import bench

    device = args.device or bench.default_device()
    dtypes = args.dtypes or bench.default_dtypes(device)
    rows = bench.run(args.presets, args.batch_sizes, dtypes, device, args.seconds)
    print(bench.format_table(rows, device))


def build_parser() -> argparse.ArgumentParser:
    from .bench import DTYPES
    from .model import PRESETS

    parser = argparse.ArgumentParser(prog="dck-talking", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    bench = commands.add_parser("bench", help="measure model throughput (ms/frame, frames/s) as a table")
    bench.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    bench.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 32])
    bench.add_argument("--dtypes", nargs="+", choices=list(DTYPES), help="default: fp32 bf16 (CPU), fp32 fp16 bf16 (GPU)")
    bench.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    bench.add_argument("--seconds", type=float, default=2.0, help="time spent on each row, at least 2 calls")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DCKError as exc:
        print(f"dck-talking: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dck-talking: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
