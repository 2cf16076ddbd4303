"""``dualtalk fit-map``: fit a FLAME <-> ARKit map from paired tracks (see
:mod:`dualtalk_core.data.map_fit`) and write it in the ``config/maps/*.yaml`` format.

Example (the DualTalk set with its ARKit conversion beside it, ``--rig arkit61`` layout)::

    dualtalk fit-map flame-to-arkit data/train -o my_avatar_flame56_to_arkit52.yaml
    dualtalk fit-map arkit-to-flame data/train -o my_tracker_arkit_to_flame56.yaml

Every pair is loaded and checked before the fit; a bad file stops the command with its name
and nothing is written.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def register(subparsers) -> None:
    from dualtalk_core.data.map_fit import DIRECTIONS

    p = subparsers.add_parser("fit-map", help="fit a FLAME<->ARKit rig map from paired tracks",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("direction", choices=sorted(DIRECTIONS),
                   help="flame-to-arkit (avatar driving: head_driver rig_map_file) or "
                        "arkit-to-flame (partner face tracking: face_input_adapter)")
    p.add_argument("paths", nargs="+", type=Path,
                   help="FLAME .npz files or folders; each .npz needs its ARKit [T, 61] .npy "
                        "of the same name beside it")
    p.add_argument("-o", "--out", type=Path, required=True, help="map YAML to write")
    p.add_argument("--ridge", type=float, default=1e-3,
                   help="ridge weight on standardised sources (default %(default)g)")
    p.add_argument("--smooth-frames", type=float, default=0.0,
                   help="Gaussian smoothing (sigma, frames) of both tracks before the fit")
    p.add_argument("--prune", type=float, default=0.0,
                   help="leave out terms whose typical effect (|gain| x source std) is below "
                        "this (default: keep every term)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dualtalk_core.data.map_fit import fit_map, load_pair, map_yaml, pair_files

    tracks = [load_pair(npz, npy) for npz, npy in pair_files(args.paths)]
    fitted = fit_map(tracks, args.direction, ridge=args.ridge, smooth_frames=args.smooth_frames)
    command = "dualtalk fit-map " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 2 and sys.argv[1] == "fit-map" else ""
    text = map_yaml(fitted, prune=args.prune, command=command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    worst = sorted(zip(fitted.rmse, fitted.target_names), reverse=True)[:3]
    print(f"fitted {args.direction} on {fitted.frames} frames of {len(tracks)} track(s); "
          f"largest residuals (RMSE): " + ", ".join(f"{n} {e:.4f}" for e, n in worst))
    print(f"wrote {args.out}")
    return 0
