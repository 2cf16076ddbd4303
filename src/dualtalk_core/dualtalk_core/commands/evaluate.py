"""``dualtalk evaluate``: the paper's metrics for a checkpoint or a folder of predictions,
next to the Table 4 baselines on the same clip-sides.

Sources of predictions (at most one; with neither, only the baselines are scored):
``--checkpoint C`` runs ``predict_clip`` on every clip-side of ``--data ROOT --split SPLIT``;
``--pred-dir DIR`` reads ``<clip>_speakerN.npy`` files (the released output naming).
Ground truth and partner motion always come from ``--data``/``--split``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("dualtalk.evaluate")

TRAIN_FREE_BASELINES = ("copy-partner",)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="paper metrics (FD, P-FD, MSE, SID, rPCC) + baselines",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="model checkpoint to run on every clip-side")
    src.add_argument("--pred-dir", type=Path, help="folder of <clip>_speakerN.npy predictions")
    p.add_argument("--data", type=Path, required=True, help="DualTalk-layout data root")
    p.add_argument("--split", default="test",
                   help="split to score (default: test; '.' = the --data folder itself, e.g. "
                        "../shared/dualtalk-sample)")
    p.add_argument("--baselines", default="all",
                   help="all | none | comma list of: random, mean, copy-partner, nearest-audio, "
                        "nearest-motion (default: all)")
    p.add_argument("--train-split", default="train",
                   help="split the baselines draw from / retrieve in (default: train)")
    p.add_argument("--max-clips", type=int, default=None,
                   help="score only the first N clips (pairs, both sides; sorted by name)")
    p.add_argument("--device", default="cpu", help="torch device for --checkpoint (default: cpu)")
    p.add_argument("--streaming", action="store_true",
                   help="run --checkpoint through the streaming session, chunked as a live stream "
                        "arrives (what a robot gets), instead of one offline pass per clip")
    p.add_argument("--chunk-ms", type=float, default=20.0,
                   help="--streaming: input chunk length in ms (default 20)")
    p.add_argument("--method-name", default=None,
                   help="row label of the model (default: checkpoint / folder name)")
    p.add_argument("--sid-fit-on", choices=("pred", "gt"), default="pred",
                   help="SID k-means fitted on predictions (released, default) or ground truth")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes for scoring")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-frames baseline")
    p.add_argument("--save-preds", type=Path, default=None,
                   help="write the model's predictions here as <clip>_speakerN.npy")
    p.add_argument("--markdown", type=Path, help="also write the Markdown table here")
    p.add_argument("--json", type=Path, help="write every metric x group, raw and scaled, here")
    p.add_argument("--per-clip", type=Path, help="write per-clip raw metrics (CSV) here")
    p.add_argument("--no-paper", action="store_true", help="leave the published rows out")
    p.set_defaults(func=run)


def _predict_with_checkpoint(args, sides) -> tuple[str, dict[str, np.ndarray]]:
    from dualtalk_core.model.checkpoint import load_checkpoint
    from dualtalk_core.model.inference import predict_clip

    model, payload = load_checkpoint(args.checkpoint, map_location=args.device)
    model.eval()
    try:
        from tqdm import tqdm
        it = tqdm(sides, desc="predict", unit="side", file=sys.stderr,
                  disable=not sys.stderr.isatty())
    except ImportError:  # pragma: no cover - tqdm is a dependency
        it = sides
    preds = {}
    for s in it:
        if args.streaming:
            from dualtalk_core.streaming.clip import predict_clip_streamed

            preds[s.name] = predict_clip_streamed(model, payload, s.self_audio, s.partner_audio,
                                                  s.partner_motion, args.chunk_ms, args.device)
        else:
            preds[s.name] = predict_clip(model, s.self_audio, s.partner_audio,
                                         s.partner_motion, device=args.device)
        if args.save_preds is not None:
            args.save_preds.mkdir(parents=True, exist_ok=True)
            np.save(args.save_preds / f"{s.name}.npy", preds[s.name])
    return args.method_name or args.checkpoint.stem, preds


def _baseline_results(args, keys, sides, gts, partners, audio):
    from dualtalk_core.evaluation import baselines as B
    from dualtalk_core.data.dataset import load_split
    from dualtalk_core.evaluation.evaluate import evaluate_predictions

    need_train = [k for k in keys if k not in TRAIN_FREE_BASELINES]
    bank = None
    if need_train:
        train_dir = args.data / args.train_split
        if not train_dir.is_dir():
            if args.baselines.strip().lower() == "all":
                log.warning("no %s split at %s: skipping baselines %s", args.train_split,
                            train_dir, ", ".join(need_train))
                keys = [k for k in keys if k in TRAIN_FREE_BASELINES]
            else:
                raise FileNotFoundError(
                    f"{train_dir}: baselines {', '.join(need_train)} need the training split "
                    f"(--train-split); use --baselines copy-partner or none without it")
        else:
            train_sides, report = load_split(args.data, args.train_split)
            if report.issues:
                log.warning("%s", report.summary())
            bank = B.BaselineBank.from_sides(train_sides, seed=args.seed)
    results = []
    for key in keys:
        label = B.BASELINES[key][0]
        log.info("scoring baseline %s", label)
        preds = B.run_baseline(key, bank, sides,
                               num_frames={n: len(g) for n, g in gts.items()})
        results.append(evaluate_predictions(preds, gts, partners, method=label,
                                            sid_fit_on=args.sid_fit_on, jobs=args.jobs,
                                            self_audio=audio))
    return results


def run(args) -> int:
    from dualtalk_core.evaluation.baselines import parse_baselines
    from dualtalk_core.data.dataset import load_split
    from dualtalk_core.evaluation.evaluate import combine_results, evaluate_predictions, targets_of, \
        load_pred_dir, neutral_partner_note

    keys = parse_baselines(args.baselines)
    if args.checkpoint is None and args.pred_dir is None and not keys:
        raise ValueError("nothing to evaluate: give --checkpoint or --pred-dir, or baselines")
    # one-sided clips (the DualTalk demo clips): a missing partner face becomes the neutral face
    split = None if args.split in (".", "") else args.split
    sides, report = load_split(args.data, split, max_clips=args.max_clips,
                               allow_missing_partner_motion=True)
    if report.issues:
        log.warning("%s", report.summary())
    gts, partners = targets_of(sides, neutral_partner=True)
    neutral = neutral_partner_note(s.name for s in sides
                                   if s.partner_motion_is_zeros and s.name in gts)
    sides = [s for s in sides if s.name in gts and s.name in partners]
    if not sides:
        raise ValueError(f"{args.data / args.split}: no clip-side with both its own and its "
                         f"partner's motion to score against")
    audio = {s.name: s.self_audio for s in sides}
    gts = {s.name: gts[s.name] for s in sides}
    partners = {s.name: partners[s.name] for s in sides}
    log.info("scoring %d clip-sides of %s", len(sides), args.data / args.split)

    results = []
    if args.checkpoint is not None:
        name, preds = _predict_with_checkpoint(args, sides)
        results.append(evaluate_predictions(preds, gts, partners, method=name,
                                            sid_fit_on=args.sid_fit_on, jobs=args.jobs,
                                            self_audio=audio))
    elif args.pred_dir is not None:
        preds = load_pred_dir(args.pred_dir)
        if args.max_clips is not None:
            preds = {n: p for n, p in preds.items() if n in gts}
        name = args.method_name or args.pred_dir.name
        results.append(evaluate_predictions(preds, gts, partners, method=name,
                                            sid_fit_on=args.sid_fit_on, jobs=args.jobs,
                                            self_audio=audio))
    results += _baseline_results(args, keys, sides, gts, partners, audio)
    if not results:
        raise ValueError("no method was scored")
    result = combine_results(results)
    if neutral:
        result.notes.append(neutral)

    table = result.to_markdown(include_paper=not args.no_paper)
    print(table)
    for s in result.skipped:
        log.warning("skipped %s (%s): %s", s["clip"], s["method"], s["reason"])
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_json_dict(), indent=2) + "\n")
    if args.per_clip:
        result.write_per_clip_csv(args.per_clip)
    return 0
