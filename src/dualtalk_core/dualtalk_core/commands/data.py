"""``dualtalk data check ROOT`` (what loads, what does not and why), ``dualtalk data synth`` and
``dualtalk data calibrate`` (face statistics of real tracks, which ``synth`` draws from)."""
from __future__ import annotations

import argparse
import time

from dualtalk_core import layout


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="check a DualTalk data folder / synthesise one")
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    check = sub.add_parser("check", help="load a data set and report every problem per file")
    check.add_argument("root", help="data root (holding train/test/ood) or a split folder")
    check.add_argument("--split", action="append", default=None,
                       help="split(s) to check (default: every train/test/ood folder present, "
                            "or ROOT itself when it has none)")
    check.add_argument("--rig", default=layout.FLAME56, choices=[layout.FLAME56, layout.ARKIT61])
    check.add_argument("--allow-missing-partner-motion", action="store_true",
                       help="load sides whose partner motion is missing with zeros (inference)")
    check.add_argument("--no-require-target", action="store_true",
                       help="load sides whose own motion is missing (inference only)")
    check.set_defaults(func=run_check)

    synth = sub.add_parser("synth", help="write synthetic two-person conversations")
    synth.add_argument("-o", "--out", required=True, help="output data root")
    synth.add_argument("--pairs", type=int, required=True, help="number of conversations")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--splits", default="train=0.8,test=0.1,ood=0.1",
                       help="NAME=FRACTION,... (default %(default)s)")
    synth.add_argument("--min-rounds", type=int, default=1)
    synth.add_argument("--max-rounds", type=int, default=6)
    synth.add_argument("--min-seconds", type=float, default=6.0)
    synth.add_argument("--max-seconds", type=float, default=30.0)
    synth.add_argument("--voice", default="auto", choices=["auto", "espeak", "procedural"],
                       help="speech source (auto: espeak-ng when installed)")
    synth.add_argument("--face-stats", default="real", metavar="real|legacy|STATS.json",
                       help="scale of the faces: real (default: statistics of the real sample "
                            "clip, packaged), legacy (the hand-set ~0.1 scale the bundled demo "
                            "model was trained on; byte-identical to older data), or a file "
                            "from `dualtalk data calibrate`")
    synth.set_defaults(func=run_synth)

    cal = sub.add_parser("calibrate", help="measure face statistics on real .npz tracks")
    cal.add_argument("tracks", nargs="+", help="real DualTalk/EMOCA .npz files (exp, pose); "
                                               "their .wav files are used when beside them")
    cal.add_argument("-o", "--out", required=True, help="statistics JSON to write")
    cal.add_argument("--no-audio", action="store_true",
                     help="ignore the .wav files (speaking frames then come from the jaw)")
    cal.set_defaults(func=run_calibrate)

    stats = sub.add_parser("stats", help="per-group motion statistics (EXP/JAW/POSE spread) of "
                                         "npz files or data folders, one row per argument")
    stats.add_argument("paths", nargs="+", help=".npz files or data folders (searched "
                                                "recursively for *_speakerN.npz)")
    stats.set_defaults(func=run_stats)


def run_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dualtalk_core.data.dataset import SPLITS, load_split

    root = Path(args.root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist")
    splits = args.split or [s for s in SPLITS if (root / s).is_dir()] or [None]
    loaded = 0
    for split in splits:
        sides, report = load_split(root, split, rig=args.rig,
                                   require_target=not args.no_require_target,
                                   allow_missing_partner_motion=args.allow_missing_partner_motion)
        print(report.format())
        loaded += report.loaded
    return 0 if loaded > 0 else 1


def run_synth(args: argparse.Namespace) -> int:
    from dualtalk_core.data.synth import synthesize_dataset

    start = time.perf_counter()
    summary = synthesize_dataset(args.out, args.pairs, args.seed, splits=args.splits,
                                 min_rounds=args.min_rounds, max_rounds=args.max_rounds,
                                 voice=args.voice, min_seconds=args.min_seconds,
                                 max_seconds=args.max_seconds, progress=True,
                                 face_stats=args.face_stats)
    counts = ", ".join(f"{k}={len(v)}" for k, v in summary.clips.items())
    print(f"wrote {summary.pairs} pairs ({counts}), {summary.seconds / 3600:.2f} h of "
          f"conversation, voice={summary.voice}, faces={args.face_stats}, to {summary.root} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """Every input is checked before anything is written: one bad file, no output."""
    from dualtalk_core.data.calibrate import calibrate
    from dualtalk_core.data.stats_table import stats_summary_lines

    stats = calibrate(args.tracks, use_audio=not args.no_audio)
    path = stats.write(args.out)
    print("\n".join(stats_summary_lines(stats)))
    print(f"wrote {path} ({stats.frames} frames, {stats.speakers} speaker(s))")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from dualtalk_core.data.stats_table import group_stats, load_motions, markdown_table

    rows = {str(p): group_stats(load_motions([p])) for p in args.paths}
    print(markdown_table(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m dualtalk_core.commands.data check|synth|calibrate ...`` (= ``dualtalk data ...``)."""
    import logging
    import sys

    parser = argparse.ArgumentParser(prog="dualtalk")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", *(argv if argv is not None else sys.argv[1:])])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"dualtalk data: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
