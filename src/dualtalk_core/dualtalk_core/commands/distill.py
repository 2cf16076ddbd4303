"""``dualtalk distill``: train a student model to reproduce a teacher checkpoint from audio.

The teacher (any preset; e.g. the authors' model from ``dualtalk convert-official``) predicts
both speakers of every training and validation clip (twice: with a neutral partner face, then
with its own prediction of the partner), once, into a cache keyed by its weights; the student
(``live`` by default) then trains on those outputs with the ordinary trainer.
See :mod:`dualtalk_core.training.distill`.
"""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "distill", help="train a student (live by default) on a teacher checkpoint's outputs",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="teacher checkpoint (.pt)")
    p.add_argument("--data", required=True,
                   help="data root (DualTalk layout; audio is enough, faces are optional)")
    p.add_argument("--out", required=True, help="output folder of the student's run")
    student = p.add_mutually_exclusive_group()
    student.add_argument("--config", help="the student's training YAML (TrainConfig keys)")
    student.add_argument("--student-preset", default=None,
                         help="student preset, trained with config/train_live.yaml's recipe and "
                              "the teacher's partner_motion_scale (default: live)")
    p.add_argument("--cache", default=None,
                   help="teacher-output cache root (default DATA/teacher_cache); each teacher "
                        "gets its own teacher-<hash> folder in it")
    p.add_argument("--gt-weight", type=float, default=0.0,
                   help="mix ground truth where a clip has it: (1-w) L(teacher) + w L(gt) "
                        "(default 0: the teacher alone)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop the student's training after M minutes (the cache comes first)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    p.add_argument("--device", default=None,
                   help="auto, cpu, cuda or cuda:N for the teacher and the student "
                        "(default: the config's)")
    p.add_argument("--resume", default=None, help="resume the student's run (its last.pt)")
    p.add_argument("--cache-only", action="store_true",
                   help="build the teacher cache and stop (no training)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dualtalk_core.model.checkpoint import read_payload
    from dualtalk_core.model.config import DualTalkConfig
    from dualtalk_core.training import teacher_cache as tc
    from dualtalk_core.training.distill import distill, student_config

    tc.check_teacher_rig(tc.teacher_rig(args.teacher), tc.STUDENT_RIG, args.teacher)
    teacher_config = DualTalkConfig.from_dict(read_payload(args.teacher)["config"])
    changes = {"max_steps": args.max_steps, "max_minutes": args.max_minutes,
               "device": args.device}
    if args.no_progress:
        changes["progress"] = False
    cfg = student_config(args.config, args.student_preset, teacher_config, changes)
    result = distill(args.teacher, args.data, args.out, cfg, cache=args.cache,
                     gt_weight=args.gt_weight, resume=args.resume, cache_only=args.cache_only)
    print(result.cache.summary())
    if result.train is not None:
        print(f"student ({cfg.model}) {result.train.describe(against='the teacher')}")
    return 0
