"""pushd benchmarks: each scenario measured beside its baselines, in one run, on one receiver.

Run ``python -m benchmarks`` (every scenario) or name some; ``--list`` shows them. Each one
prints a table, its ratios and the issue's targets, writes ``<out>/<date>-<scenario>.json`` and
its charts (PNG) next to it. The receiver is nginx when installed (Debian ``nginx-light``),
else an aiohttp receiver; peers (gcloud-tasks-emulator, SqliteHuey, procrastinate) run in their
own virtualenvs under ``benchmarks/.peers/``, made on first use. Everything listens on
127.0.0.1; every count and wait is bounded, and every process started here is stopped on the
way out (and killed with the benchmark if it is killed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import receivers
from benchmarks.harness import T0, say, table
from benchmarks.scenarios import SCENARIOS, Context, Result, runner

RESULTS = Path(__file__).resolve().parent / "results"

EPILOG = """\
examples:
  make bench                                      # every scenario, full size (~10 min)
  python -m benchmarks --list                     # what each scenario measures
  python -m benchmarks delivery                   # one scenario, with the peers
  python -m benchmarks delivery rate --quick      # smaller counts, a minute or two
  python -m benchmarks --smoke --out /tmp/b       # seconds: what make test runs
  python -m benchmarks delivery --peers none      # pushd and the raw aiohttp ceiling only
  python -m benchmarks delivery --peers gte       # only the Cloud Tasks emulator as a peer
  python -m benchmarks eta --receiver aiohttp     # µs arrival times instead of nginx's ms
"""


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
        "loadavg_at_start": os.getloadavg(),
        "note": "shared, noisy VM: compare ratios within one run, not absolute numbers",
    }


def report(result: Result) -> None:
    print()
    print(f"== {result.scenario}")
    if len(result.table) > 1:
        print(table(result.table))
    for name, value in result.ratios.items():
        print(f"  ratio {name}: {value:.3f}")
    for t in result.targets:
        sign = ">=" if t.at_least else "<="
        mark = "met" if t.met else "MISSED"
        print(f"  target {t.name}: {t.value:,.4g} {sign} {t.target:,.4g}  {mark}")
    for note in result.notes:
        print(f"  note: {note}")
    for chart in result.charts:
        print(f"  chart: {chart}")


def save(ctx: Context, result: Result, elapsed_s: float) -> Path:
    path = ctx.out / f"{ctx.stamp}-{result.scenario}.json"
    document = {
        "scenario": result.scenario,
        "what": SCENARIOS[result.scenario],
        "scale": ctx.scale,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": round(elapsed_s, 1),
        "machine": ctx.machine,
        "receiver": ctx.receiver.kind,
        "table": result.table,
        "ratios": result.ratios,
        "targets": [t.as_dict() for t in result.targets],
        "charts": [str(p.name) for p in result.charts],
        "notes": result.notes,
        "data": result.data,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


async def run(args: argparse.Namespace, names: list[str]) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="pushd-bench-", dir=args.tmp_dir))
    out: Path = args.out
    failed: list[str] = []
    missed: list[str] = []
    try:
        async with (
            receivers.start(tmp, args.receiver) as receiver,
            aiohttp.ClientSession() as session,
        ):
            say(f"receiver: {receiver.kind} at {receiver.url}; results in {out}")
            ctx = Context(
                scale=args.scale,
                tmp=tmp,
                receiver=receiver,
                session=session,
                out=out,
                stamp=time.strftime("%Y-%m-%d"),
                peers=args.peers,
                machine=machine(),
            )
            for name in names:
                say(f"scenario {name}: {SCENARIOS[name]}")
                start = time.monotonic()
                try:
                    result = await runner(name)(ctx)
                except Exception as exc:  # one broken scenario never hides the others
                    failed.append(name)
                    say(f"scenario {name} FAILED: {type(exc).__name__}: {exc}")
                    traceback.print_exc()
                    continue
                report(result)
                missed += [f"{name}: {t.name}" for t in result.targets if not t.met]
                say(f"wrote {save(ctx, result, time.monotonic() - start)}")
    finally:
        if args.keep_tmp:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    say(f"done in {time.monotonic() - T0:.0f}s")
    if missed:
        print("targets missed: " + "; ".join(missed))
    if failed:
        print("scenarios failed: " + ", ".join(failed))
        return 1
    return 0


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", nargs="*", help="scenarios to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller counts (a few minutes)")
    size.add_argument("--smoke", action="store_true", help="tiny counts, no peers (seconds)")
    parser.add_argument(
        "--receiver",
        choices=["auto", "nginx", "aiohttp"],
        default="auto",
        help="where deliveries go (default: nginx if installed, else aiohttp)",
    )
    parser.add_argument(
        "--peers",
        help="comma-separated peers to run (gte, huey, procrastinate), or none (default: all; "
        "none with --smoke)",
    )
    parser.add_argument("--out", type=Path, help=f"results directory (default {RESULTS})")
    parser.add_argument("--tmp-dir", help="where databases and logs go (default $TMPDIR)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep databases and logs")
    args = parser.parse_args(argv)
    if args.list:
        for name, what in SCENARIOS.items():
            print(f"  {name:9} {what}")
        raise SystemExit(0)
    unknown = [s for s in args.scenario if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    args.scale = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.peers is None:
        args.peers = [] if args.smoke else None
    elif args.peers == "none":
        args.peers = []
    else:
        args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    args.out = args.out or RESULTS
    args.out.mkdir(parents=True, exist_ok=True)
    return args, args.scenario or list(SCENARIOS)


def main(argv: list[str] | None = None) -> int:
    args, names = parse(argv)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through every finally: subprocesses are stopped

    signal.signal(signal.SIGTERM, terminate)
    try:
        return asyncio.run(run(args, names))
    except KeyboardInterrupt:
        say("interrupted; subprocesses stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
