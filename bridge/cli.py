"""The ``glutebridge`` command line.  Thin: parses arguments, calls ``bridge.commands``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from bridge import _compat
from bridge.errors import ConfigError, GlutebridgeError

EPILOG = """\
getting started:
  glutebridge demo                          the virtual wearable through the whole stack
  glutebridge scan                          find BLE wearables
  glutebridge stream ble://AA:BB:CC:DD:EE:FF --record session.gbrec
  glutebridge analyze session.gbrec         results of a recording (or a CSV file)
  glutebridge report session.gbrec -o report.html
source URLs: ble://ADDRESS, ble://name=NAME, serial:///dev/ttyACM0?baud=921600,
  tcp://HOST:PORT, sim://SCENARIO (virtual wearable), replay://FILE
"""


#: The report ``demo`` writes when no --report is given; each demo run replaces it.
DEMO_REPORT = "glutebridge-demo.html"


def _outputs(args, title: str = "glutebridge", default_report: str | None = None):
    """The outputs of a session command; files the user named are checked first (an
    existing one is refused unless --force).  ``default_report`` (demo's own file) is
    written without that check: a second demo replaces it."""
    from bridge.commands.run import Outputs

    view = getattr(args, "view", "auto")
    if getattr(args, "format", None) == "jsonl":
        view = "jsonl"
    out = Outputs(view=view, json_path=getattr(args, "json", None),
                  report_path=getattr(args, "report", None),
                  dashboard=getattr(args, "dashboard", False),
                  dashboard_port=getattr(args, "port", 8765),
                  lsl=getattr(args, "lsl", False), age=getattr(args, "age", None),
                  title=title, force=getattr(args, "force", False))
    out.check_files()
    out.check_services()
    if out.report_path is None:
        out.report_path = default_report
    return out


def _faults(args):
    from bridge.simulator.device import Faults

    return Faults(drop_rate=args.drop_rate, bit_error_rate=args.bit_errors,
                  clock_drift_ppm=getattr(args, "drift_ppm", 0.0), seed=args.seed)


def _run(coro):
    try:
        return _compat.run(coro)  # the first Ctrl-C cancels (a clean stop), also on 3.10
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return None


# ------------------------------------------------------------------ commands
def cmd_demo(args) -> int:
    from bridge.commands.streaming import demo

    if args.record and args.speed <= 0:
        # speed 0 runs the wearable in-process: there is no byte stream to record
        raise ConfigError(f"--record {args.record} needs the wearable's byte stream, which "
                          "--speed 0 skips; give a speed above 0 (e.g. --speed 50)")
    out = _outputs(args, "glutebridge demo — virtual wearable", default_report=DEMO_REPORT)
    banner = (f"glutebridge demo — scenario '{args.scenario}' from the virtual wearable, "
              + ("as fast as possible" if args.speed <= 0 else f"at {args.speed:g}x speed"))
    if out.view == "jsonl":
        print(banner, file=sys.stderr)  # stdout is for the JSON Lines only
    elif out.view != "quiet":
        out.console.print(banner, style="bold", highlight=False)
    _run(demo(scenario=args.scenario, seed=args.seed, speed=args.speed, faults=_faults(args),
              out=out, record=args.record, profile=args.profile, no_profile=args.no_profile))
    return 0


def cmd_stream(args) -> int:
    from bridge.commands.streaming import stream

    conn_opts = {}
    if args.give_up is not None:
        conn_opts["reconnect_timeout"] = args.give_up
    if args.stall is not None:
        conn_opts["stall_timeout"] = args.stall
    _run(stream(args.url, out=_outputs(args, f"glutebridge — {args.url}"), record=args.record,
                duration=args.duration, profile=args.profile, no_profile=args.no_profile,
                stance_duration=args.stance_duration, connection_options=conn_opts or None))
    return 0


def cmd_replay(args) -> int:
    from bridge.commands.streaming import replay

    _run(replay(args.file, speed=args.speed, out=_outputs(args, f"replay — {args.file}"),
                profile=args.profile, no_profile=args.no_profile))
    return 0


def cmd_analyze(args) -> int:
    from rich.console import Console

    from bridge.commands.files import analyze, results_csv, results_table

    from bridge.commands.outfiles import check_new

    check_new(args.output, force=args.force)
    results, _ = analyze(args.file, rate=args.rate, columns=args.columns,
                         progress=not args.no_progress, profile=args.profile,
                         no_profile=args.no_profile, age=args.age)
    out = open(args.output, "w") if args.output else sys.stdout
    try:
        if args.format == "json":
            json.dump(results, out, indent=1, default=str)
            out.write("\n")
        elif args.format == "csv":
            results_csv(results, out)
        else:
            results_table(results, Console(file=out, highlight=False))
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def cmd_export(args) -> int:
    from bridge.commands.files import export

    paths = export(args.file, args.to, args.output, rate=args.rate, columns=args.columns,
                   profile=args.profile, no_profile=args.no_profile, force=args.force)
    for p in paths:
        print(p)
    return 0


def cmd_report(args) -> int:
    from bridge.commands.files import report

    print(report(args.file, args.output, rate=args.rate, columns=args.columns,
                 profile=args.profile, no_profile=args.no_profile, age=args.age,
                 force=args.force))
    return 0


def cmd_scan(args) -> int:
    from rich.console import Console

    from bridge.commands.device import scan

    return _run(scan(args.timeout, Console())) or 0


def cmd_simulate(args) -> int:
    from rich.console import Console

    from bridge.commands.device import simulate

    _run(simulate(args.serve, scenario=args.scenario, seed=args.seed, speed=args.speed,
                  loop=args.loop, faults=_faults(args), console=Console()))
    return 0


def cmd_calibrate(args) -> int:
    from rich.console import Console

    from bridge.commands.guided import calibrate

    _run(calibrate(args.url, args.profile, rest_s=args.rest, mvc_s=args.mvc,
                   console=Console(highlight=False), force=args.force))
    return 0


def cmd_test(args) -> int:
    from bridge.commands.guided import activation, single_leg

    stance = args.stance_duration
    if args.old_duration is not None:  # `test --duration`, the option's old name
        if stance is not None:
            raise ConfigError("--duration is the old name of --stance-duration: give one")
        print("glutebridge: warning: test --duration is now --stance-duration (as in stream); "
              "the old name will go", file=sys.stderr)
        stance = args.old_duration
    out = _outputs(args, f"glutebridge test {args.protocol}")
    unused = [opt for opt, given in (("--legs", args.legs != "right,left"),
                                     ("--reps", args.reps != 5), ("--hold", args.hold != 10.0))
              if given]
    if unused and args.url.lower().startswith(("sim://", "replay://")):
        print(f"glutebridge: note: {args.url} plays its own script (the scripted client or the "
              f"recording sets the legs, reps and hold): {', '.join(unused)} not used",
              file=sys.stderr)
    if args.protocol == "single-leg":
        _run(single_leg(args.url, legs=tuple(args.legs.split(",")),
                        duration=30.0 if stance is None else stance,
                        out=out, profile=args.profile, no_profile=args.no_profile))
    else:
        _run(activation(args.url, reps=args.reps, hold_s=args.hold, out=out,
                        profile=args.profile, no_profile=args.no_profile))
    return 0


# -------------------------------------------------------------------- parser
def _add_output_options(p, report_default=None, record: bool = False) -> None:
    p.add_argument("--view", choices=["auto", "live", "lines", "quiet"], default="auto",
                   help="terminal output: full-screen live view, one line per event, or "
                        "nothing (default: live on a terminal, lines otherwise)")
    p.add_argument("--format", choices=["text", "jsonl"], default="text",
                   help="jsonl: one JSON event per line on stdout, for scripts")
    p.add_argument("--json", metavar="FILE", help="write the session results as JSON")
    p.add_argument("--report", metavar="FILE",
                   help="write a self-contained HTML report" +
                   (f" (default {report_default}, replaced on each run)" if report_default
                    else ""))
    _add_force_option(p, "--json and --report files", record=record)
    p.add_argument("--dashboard", action="store_true",
                   help="serve a live web dashboard on 127.0.0.1")
    p.add_argument("--port", type=_port, default=8765,
                   help="dashboard port (default 8765; 0 = any free port)")
    p.add_argument("--lsl", action="store_true",
                   help="publish raw channels and events as Lab Streaming Layer outlets")
    _add_age_option(p)


def _add_force_option(p, what: str, record: bool = False) -> None:
    p.add_argument("--force", action="store_true",
                   help=f"overwrite existing {what} (default: refuse and write nothing)"
                   + ("; a --record recording is never overwritten" if record else ""))


def _parsed(text: str, kind, what: str):
    """``kind(text)`` (int or float), or the argparse error "'TEXT' is not WHAT"."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _number(text: str) -> float:
    x = _parsed(text, float, "a number")
    if x != x or x in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return x


def _positive(text: str) -> float:
    """A number > 0 (seconds, counts): 0 or less would silently mean something else."""
    x = _number(text)
    if not x > 0:
        raise argparse.ArgumentTypeError(f"{x:g}: give a number above 0")
    return x


def _non_negative(text: str) -> float:
    x = _number(text)
    if x < 0:
        raise argparse.ArgumentTypeError(f"{x:g}: give 0 or more")
    return x


def _fraction(text: str) -> float:
    """A probability or fraction, 0 to 1."""
    x = _number(text)
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"{x:g} is not a fraction between 0 and 1")
    return x


def _count(text: str) -> int:
    n = _parsed(text, int, "a whole number")
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: give 1 or more")
    return n


def _port(text: str) -> int:
    n = _parsed(text, int, "a port number")
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{n} is not a port (0-65535; 0 = any free port)")
    return n


def _age(text: str) -> float:
    age = _parsed(text, float, "a number of years")
    if not 1 <= age <= 120:
        raise argparse.ArgumentTypeError(f"{age:g} years is not a plausible age (1-120)")
    return age


def _add_age_option(p) -> None:
    p.add_argument("--age", type=_age, metavar="YEARS",
                   help="client's age: single-leg stance is graded against timed unipedal "
                        "stance norms for that age (Springer 2007) as well as the goal")


def _add_fault_options(p, drop=0.0, bits=0.0) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    p.add_argument("--drop-rate", type=_fraction, default=drop,
                   help=f"fraction of data packets the virtual link loses (default {drop:g})")
    p.add_argument("--bit-errors", type=_fraction, default=bits,
                   help=f"probability of a flipped bit per byte sent (default {bits:g})")
    p.add_argument("--drift-ppm", type=_number, default=0.0,
                   help="device clock drift in ppm (default 0)")


def _add_profile_options(p, recorded: bool = True, live: bool = False) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--profile", metavar="NAME",
                   help="calibration profile from `glutebridge calibrate` (rest baseline, "
                        "%%MVC)" + ("; overrides the one stored in a recording" if recorded
                                    else "") +
                        ("; a recording made with --record stores it" if live else ""))
    g.add_argument("--no-profile", action="store_true",
                   help="ignore the calibration profile stored in the recording" if recorded
                   else "no calibration profile")


def _add_file_options(p, age: bool = True) -> None:
    p.add_argument("file", help="a recording (.gbrec) or a CSV file of EMG columns in mV "
                   "(convert volts or µV first: peaks and %%MVC are reported in mV)")
    p.add_argument("--rate", type=float,
                   help="sample rate of a CSV file in Hz (default: from its time column)")
    p.add_argument("--columns", nargs="+", metavar="NAME",
                   help="CSV columns to analyse (default: all but the time column)")
    _add_profile_options(p)
    if age:
        _add_age_option(p)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="glutebridge",
        description="Bridge for EMG + IMU wearables: is the glute firing, when, how hard, how "
                    "long, left vs right, and how steady on one leg.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="scripted session from the virtual wearable (no hardware)",
                       description="Plays a scripted client (5 glute bridges, a 10 s hold, 30 s "
                       "single-leg stance per leg) from the virtual wearable through the real "
                       "wire protocol, decoder and native cores, with a live view, then prints "
                       "a summary.")
    d.add_argument("--speed", type=_non_negative, default=2.0,
                   help="playback speed (default 2: about 50 s); 0 = as fast as possible")
    d.add_argument("--scenario", default="demo",
                   help="demo, bridge-reps, holds, clamshells, late-glute or single-leg")
    d.add_argument("--record", metavar="FILE", help="also record the session's raw bytes")
    _add_profile_options(d, recorded=False, live=True)
    _add_fault_options(d, drop=0.002, bits=1e-6)
    _add_output_options(d, report_default=DEMO_REPORT, record=True)
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("stream", help="stream a wearable live (BLE, serial, TCP, sim)",
                       description="Connects, handshakes, streams and detects live.")
    s.add_argument("url", help="source URL, e.g. ble://AA:BB:CC:DD:EE:FF or "
                               "serial:///dev/ttyACM0?baud=921600")
    s.add_argument("--record", metavar="FILE",
                   help="record the raw bytes (crash-safe) for replay and analysis")
    s.add_argument("--duration", type=_positive, metavar="S",
                   help="stop after this many seconds")
    s.add_argument("--give-up", type=_non_negative, metavar="S",
                   help="end the session when the device has been gone this many seconds "
                        "(default: keep reconnecting until Ctrl-C); either way the summary "
                        "and files cover what arrived")
    s.add_argument("--stall", type=_non_negative, metavar="S",
                   help="count the link as lost when no data arrived for S seconds although "
                        "it looks connected (device hung, stale BLE link, wedged adapter), "
                        "say so and reconnect (default: 20 packet periods, at least 2 s; "
                        "0 = off)")
    _add_profile_options(s, live=True)
    s.add_argument("--stance-duration", type=_positive, default=30.0, metavar="S",
                   help="single-leg stance goal in seconds (default 30)")
    _add_output_options(s, record=True)
    s.set_defaults(func=cmd_stream)

    r = sub.add_parser("replay", help="play a recording through the live path",
                       description="Replays a recording through the same decoder and cores "
                       "as live, with the live view.")
    r.add_argument("file", help="a recording made with --record")
    r.add_argument("--speed", type=_non_negative, default=1.0,
                   help="1 = real time (default), N = N times faster, 0 = as fast as possible")
    _add_profile_options(r)
    _add_output_options(r)
    r.set_defaults(func=cmd_replay)

    a = sub.add_parser("analyze", help="results of a recording or CSV file",
                       description="Runs a recording (or CSV EMG columns) through the "
                       "detectors as fast as possible and prints the results.")
    _add_file_options(a)
    a.add_argument("--format", choices=["table", "json", "csv"], default="table",
                   help="table (default), json (everything) or csv (one row per contraction)")
    a.add_argument("-o", "--output", help="write to this file instead of stdout")
    _add_force_option(a, "-o file")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.set_defaults(func=cmd_analyze)

    e = sub.add_parser("export", help="export to CSV, EDF+, BDF+ or C3D",
                       description="Exports samples (gaps left empty or annotated) and events "
                       "(contractions, phases, gaps as annotations).")
    _add_file_options(e, age=False)
    e.add_argument("--to", choices=["csv", "edf", "bdf", "c3d"], required=True,
                   help="output format")
    e.add_argument("-o", "--output", required=True, help="output file (a folder for csv)")
    _add_force_option(e, "output files")
    e.set_defaults(func=cmd_export)

    rp = sub.add_parser("report", help="self-contained HTML report of a session",
                        description="Analyses a recording (or CSV EMG columns) as analyze does "
                        "and writes one self-contained HTML page: key findings, activation "
                        "timeline, firing order, symmetry, %MVC, fatigue, holds, single-leg "
                        "balance and link quality.")
    _add_file_options(rp)
    rp.add_argument("-o", "--output", default="report.html", help="default report.html")
    _add_force_option(rp, "-o file")
    rp.set_defaults(func=cmd_report)

    sc = sub.add_parser("scan", help="find BLE wearables",
                        description="Scans for Bluetooth LE wearables that advertise the "
                        "glutebridge service and lists their address, name and signal "
                        "strength; use the address as ble://ADDRESS. Needs BlueZ (Linux) or "
                        "the platform's Bluetooth stack; without an adapter it says so.")
    sc.add_argument("--timeout", type=_positive, default=5.0, help="seconds to scan (default 5)")
    sc.set_defaults(func=cmd_scan)

    sm = sub.add_parser("simulate", help="run the virtual wearable for other programs",
                        description="Serves the virtual wearable over a pty (serial), TCP or a "
                        "fake BlueZ (BLE) so other programs can connect to it.")
    sm.add_argument("--serve", required=True,
                    help="serial | tcp://127.0.0.1:PORT | ble")
    sm.add_argument("--scenario", default="demo", help="scenario to play (default demo)")
    sm.add_argument("--speed", type=_positive, default=1.0, help="playback speed (default 1)")
    sm.add_argument("--loop", action="store_true", help="play the scenario forever")
    _add_fault_options(sm)
    sm.set_defaults(func=cmd_simulate)

    c = sub.add_parser(
        "calibrate", help="record rest + MVC per channel into a profile",
        description="Records a rest phase, then a maximal voluntary contraction (MVC), prints "
        "per channel the rest baseline (mean, SD), its steadiness and the MVC level, and saves "
        "them as a profile for --profile. Nothing is saved when a channel was not at rest "
        "(a 0.5 s window of its envelope more than 2x, or under half, the median one) or its "
        "MVC does not reach twice the detector's onset threshold, unless --force. "
        "Re-calibrating a name keeps the previous profile as NAME.prev.")
    c.add_argument("url", help="source URL of the wearable")
    c.add_argument("--profile", required=True,
                   help="profile name: letters, digits, '-', '_', '.' (e.g. anna_smith)")
    c.add_argument("--rest", type=float, default=5.0, help="rest seconds (default 5, min 2)")
    c.add_argument("--mvc", type=float, default=5.0, help="MVC seconds (default 5, min 2)")
    c.add_argument("--force", action="store_true",
                   help="save the profile even when the checks fail")
    c.set_defaults(func=cmd_calibrate)

    t = sub.add_parser(
        "test", help="guided protocols: single-leg stance, activation test",
        description="single-leg: prompts each leg in turn (default right, then left), "
        "counts down the stance goal (--stance-duration, default 30 s) from the moment the "
        "foot leaves the floor, stops at the first touchdown, then compares the legs and "
        "grades them "
        "(--age for age norms). activation: rest, maximal contraction, 5 glute bridges and a "
        "10 s hold, then firing order (glute vs hamstrings and lumbar erectors), onset "
        "latencies, left/right symmetry and hold times. Both end with a summary and "
        "--report/--json files.")
    t.add_argument("protocol", choices=["single-leg", "activation"])
    t.add_argument("url", help="source URL of the wearable (sim://single-leg to try)")
    t.add_argument("--legs", default="right,left", help="legs in order (default right,left)")
    t.add_argument("--stance-duration", type=_positive, metavar="S",
                   help="single-leg stance goal in seconds (default 30)")
    t.add_argument("--duration", type=_positive, dest="old_duration",
                   help=argparse.SUPPRESS)  # deprecated name of --stance-duration
    t.add_argument("--reps", type=_count, default=5, help="activation test reps (default 5)")
    t.add_argument("--hold", type=_positive, default=10.0, help="hold seconds (default 10)")
    _add_profile_options(t, recorded=False)
    _add_output_options(t)
    t.set_defaults(func=cmd_test)
    return p


def _version() -> str:
    from bridge import __version__
    return f"glutebridge {__version__}"


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
    except BrokenPipeError:
        # The reader went away (`glutebridge analyze F --format csv | head`): not an error of
        # ours.  Point stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # what a shell reports for SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
