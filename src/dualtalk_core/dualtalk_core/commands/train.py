"""``dualtalk train``: train (or resume) a DualTalk model; also runs under ``torchrun``."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on a DualTalk-layout data set (single process or torchrun)",
        description="Train DualTalk. Multi-process: torchrun --nproc_per_node N "
                    "$(which dualtalk) train ... (gloo on CPU, nccl on GPU).")
    parser.add_argument("--config", help="training YAML (TrainConfig keys); default: built-in "
                                         "defaults (tiny preset)")
    parser.add_argument("--data", required=True, help="data root holding train/ (and test/)")
    parser.add_argument("--out", default=None, help="output folder (default runs/<config name>)")
    parser.add_argument("--resume", default=None, help="checkpoint to resume (last.pt)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after M minutes")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda or cuda:N (under torchrun auto/cuda = the GPU of "
                             "LOCAL_RANK); cuda without a GPU is refused")
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), default=None,
                        help="mixed precision (config default: none); fp16 needs CUDA")
    parser.add_argument("--grad-accum-steps", type=int, default=None,
                        help="micro-batches per optimizer step (same optimisation, less memory)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dualtalk_core.training.config import TrainConfig
    from dualtalk_core.training.loop import train

    cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
    changes = {"max_steps": args.max_steps, "max_minutes": args.max_minutes,
               "epochs": args.epochs, "device": args.device, "seed": args.seed,
               "amp": args.amp, "grad_accum_steps": args.grad_accum_steps}
    data = cfg.to_dict()
    data.update({k: v for k, v in changes.items() if v is not None})
    if args.no_progress:
        data["progress"] = False
    cfg = TrainConfig.from_dict(data)
    out = args.out or str(Path("runs") / (Path(args.config).stem if args.config else "train"))
    result = train(cfg, args.data, out, resume=args.resume)
    if result.history is not None and (int(__import__("os").environ.get("RANK", "0")) == 0):
        print(result.describe())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m dualtalk_core.commands.train ...`` (= ``dualtalk train ...``), handy for
    ``torchrun -m dualtalk_core.commands.train``."""
    import logging

    parser = argparse.ArgumentParser(prog="dualtalk")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *(argv if argv is not None else __import__("sys").argv[1:])])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
