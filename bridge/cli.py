"""The ``glutebridge`` command line.  Thin: parses arguments, calls the library."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bridge.errors import GlutebridgeError


def _demo(args) -> int:
    from bridge.results import session_results
    from bridge.runner import run_items, virtual_items
    from bridge.session import Session
    from bridge.simulator import scenarios
    from bridge.simulator.device import Faults
    from bridge.sinks.console import ConsoleSink

    sink = ConsoleSink()
    sink.console.print(f"[bold]glutebridge demo[/] — virtual wearable, scenario "
                       f"'{args.scenario}', {args.speed:g}x speed. Rendering the session...")
    signals = scenarios.build(args.scenario, seed=args.seed)
    faults = Faults(drop_rate=args.drop_rate, bit_error_rate=args.bit_errors, seed=args.seed)
    session = Session(stance_duration=args.stance_duration)
    stats: dict = {}
    asyncio.run(run_items(virtual_items(signals, speed=args.speed, faults=faults, stats=stats),
                          session, [sink.emit]))
    results = session_results(session)
    sink.summary(results)
    d = stats["decoder"]
    sink.console.print(f"Decoder: {d.packets} packets, {d.crc_errors} CRC errors, "
                       f"{d.framing_errors} framing errors, {d.samples_lost} samples lost")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
        sink.console.print(f"Results written to {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="glutebridge",
        description="Bluetooth/serial bridge for EMG + IMU wearables: is the glute firing, "
                    "when, how hard, how long, left vs right, and how steady on one leg.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("demo", help="run a scripted session from the virtual wearable through "
                       "the real stack (no hardware needed)",
                       description="Streams a virtual wearable (8 EMG channels at 2 kHz + a "
                       "pelvis IMU at 200 Hz) through the real wire protocol, decoder and "
                       "native cores, prints events as they happen and a summary at the end.")
    d.add_argument("--speed", type=float, default=2.0,
                   help="playback speed (default 2x: about 50 s); 0 = as fast as possible")
    d.add_argument("--scenario", default="demo", help="scenario to play (default: demo)")
    d.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    d.add_argument("--stance-duration", type=float, default=30.0,
                   help="single-leg stance goal in seconds (default 30)")
    d.add_argument("--drop-rate", type=float, default=0.002,
                   help="fraction of packets the virtual link loses (default 0.002)")
    d.add_argument("--bit-errors", type=float, default=1e-6,
                   help="bit error probability per byte on the virtual link (default 1e-6)")
    d.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    d.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except GlutebridgeError as exc:
        print(f"glutebridge: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
