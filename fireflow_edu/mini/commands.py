"""Mini-FLUX subcommands: ``mini-train`` and ``mini-bench``."""

from __future__ import annotations

from pathlib import Path

from ..reporting import write_json
from .model import SHIPPED


def run_train(args) -> None:
    import json
    from dataclasses import fields

    from .model import build_mini_pipeline, load_mini_pipeline
    from .train import lineage, run_minutes, train_mini_flux
    from .train_config import TrainConfig

    if args.out.resolve() == SHIPPED.resolve() and not args.overwrite:
        raise ValueError(f"--out {args.out} is the shipped model; pass --overwrite to replace it")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder")
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    init = None
    if args.init is not None:
        if not (args.init / "model_index.json").is_file():
            raise ValueError(f"--init {args.init} holds no model_index.json; give a folder saved by mini-train")
        init = {"path": str(args.init)}
        if (args.init / "training.json").is_file():
            init["training"] = json.loads((args.init / "training.json").read_text())
    pipe = load_mini_pipeline(args.init) if init else build_mini_pipeline(args.seed)
    pipe, record = train_mini_flux(pipe, config, args.out, on_eval=_print_eval, init=init)
    pipe.save_pretrained(args.out)
    write_json(args.out / "training.json", record)
    total = sum(run_minutes(run) for run in lineage(record))
    print(f"saved to {args.out} after {run_minutes(record):.1f} min of training ({total:.1f} min with --init's)")


def _print_eval(phase: str, row: dict) -> None:
    print(f"{phase} step {row['step']} ({row['minutes']:.1f} min): count {row['count']:.1%}, "
          f"colours {row['colors']:.1%}, shapes {row['shapes']:.1%}, all {row['all']:.1%}, "
          f"reconstruction {row['reconstruction_psnr']:.2f} dB (worst {row['worst_reconstruction_psnr']:.2f})",
          flush=True)


def run_bench(args) -> None:
    from ..reporting import print_and_save, terminal_progress
    from .benchmark import format_mini_benchmark, run_mini_benchmark
    from .model import load_mini_pipeline

    if args.out is not None and args.out.exists() and not args.overwrite:
        raise ValueError(f"--out {args.out} exists; pass --overwrite to replace it")
    pipe = load_mini_pipeline(args.model)
    results = run_mini_benchmark(pipe, args.captions, args.reconstructions, args.edits, terminal_progress())
    print_and_save(format_mini_benchmark(results), results, args.out)


def run_piebench(args) -> None:
    from .piebench import write_mini_piebench

    if (args.out / "mapping_file.json").exists() and not args.overwrite:
        raise ValueError(f"{args.out} already holds a PIE-Bench; pass --overwrite to write it again")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder")
    count = write_mini_piebench(args.out, args.per_kind)
    print(f"wrote {count} cases into {args.out}")


def _train_command(train) -> None:
    from .train_config import TrainConfig

    d = TrainConfig()
    train.description = ("Train a mini FLUX.1-dev on procedurally rendered, captioned 32x32 scenes: a rectified-flow "
                         "teacher with caption dropout, then a student that distils its classifier-free guidance "
                         "into a guidance embedding. Checkpoints in --out; a rerun with the same --out resumes.")
    train.add_argument("--init", type=Path, default=None,
                       help="fine-tune this trained mini FLUX without guidance embedding instead of fresh weights")
    train.add_argument("--teacher-steps", type=int, default=d.teacher_steps,
                       help=f"teacher AdamW steps (default {d.teacher_steps})")
    train.add_argument("--distill-steps", type=int, default=d.distill_steps,
                       help=f"distillation steps (default {d.distill_steps}; 0 keeps the teacher)")
    train.add_argument("--batch-size", type=int, default=d.batch_size, help=f"scenes per step (default {d.batch_size})")
    train.add_argument("--lr", type=float, default=d.lr, help=f"teacher peak learning rate (default {d.lr})")
    train.add_argument("--distill-lr", type=float, default=d.distill_lr,
                       help=f"student peak learning rate (default {d.distill_lr})")
    train.add_argument("--warmup", type=int, default=d.warmup, help=f"learning-rate warm-up steps (default {d.warmup})")
    train.add_argument("--caption-dropout", type=float, default=d.caption_dropout,
                       help=f"share of captions replaced by the empty prompt (default {d.caption_dropout})")
    train.add_argument("--uniform-t", type=float, default=d.uniform_t,
                       help=f"share of t drawn uniformly instead of logit-normal (default {d.uniform_t})")
    train.add_argument("--guidance-range", type=float, nargs=2, default=d.guidance_range, metavar=("LOW", "HIGH"),
                       help="guidance scales the student learns (default 1 4)")
    train.add_argument("--guidance-one-share", type=float, default=d.guidance_one_share,
                       help=f"share of each distillation batch at guidance 1, the flow inversion follows "
                       f"(default {d.guidance_one_share})")
    train.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    train.add_argument("--eval-every", type=int, default=d.eval_every,
                       help=f"steps between held-out evaluations (default {d.eval_every})")
    train.add_argument("--eval-captions", type=int, default=d.eval_captions,
                       help=f"held-out captions per evaluation (default {d.eval_captions})")
    train.add_argument("--eval-reconstructions", type=int, default=d.eval_reconstructions,
                       help=f"held-out renders reconstructed per evaluation (default {d.eval_reconstructions})")
    train.add_argument("--eval-guidance", type=float, default=d.eval_guidance,
                       help=f"guidance of the held-out text to image (default {d.eval_guidance})")
    train.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                       help=f"steps between checkpoints (default {d.checkpoint_every})")
    train.add_argument("--compile", action="store_true", help="torch.compile the transformer")
    train.add_argument("--out", type=Path, default=Path("out/mini_flux"), help="output folder (default out/mini_flux)")
    train.add_argument("--overwrite", action="store_true", help=f"allow --out to be the shipped model ({SHIPPED})")
    train.set_defaults(run=run_train)


def _bench_command(bench) -> None:
    bench.description = ("Analogues of the paper's Tables 2, 3, 4 and 6 on held-out scenes with exact ground "
                         "truth.")
    bench.add_argument("--model", type=Path, default=SHIPPED, help=f"trained pipeline folder (default {SHIPPED})")
    bench.add_argument("--captions", type=int, default=200, help="held-out captions for text to image (default 200)")
    bench.add_argument("--reconstructions", type=int, default=50, help="held-out images to reconstruct (default 50)")
    bench.add_argument("--edits", type=int, default=200, help="ground-truth edit cases (default 200)")
    bench.add_argument("--out", type=Path, default=None, help="write the results JSON here (a new file)")
    bench.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing file")
    bench.set_defaults(run=run_bench)


def _piebench_command(piebench) -> None:
    piebench.description = ("Held-out scenes of the mini FLUX's world as a PIE-Bench folder (mapping_file.json with "
                            "bracketed prompts and run-length masks, annotation_images/): run it with "
                            "`python -m fireflow_edu piebench --data DIR --model mini --out OUT`.")
    piebench.add_argument("--out", type=Path, default=Path("out/mini_piebench"),
                          help="folder to write (default out/mini_piebench)")
    piebench.add_argument("--per-kind", type=int, default=10, help="cases per edit kind (default 10; 5 kinds)")
    piebench.add_argument("--overwrite", action="store_true", help="allow --out to hold a PIE-Bench already")
    piebench.set_defaults(run=run_piebench)


def configure(name: str, parser) -> None:
    """Arguments of ``mini-train``, ``mini-bench`` or ``mini-piebench``."""
    {"mini-train": _train_command, "mini-bench": _bench_command, "mini-piebench": _piebench_command}[name](parser)
