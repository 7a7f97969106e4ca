"""Mini-FLUX subcommands: ``mini-train`` and ``mini-bench``."""

from __future__ import annotations

from pathlib import Path

from ..reporting import write_json
from .model import SHIPPED
from .train import TrainConfig


def run_train(args) -> None:
    from .model import build_mini_pipeline
    from .train import CHECKPOINT, train_mini_flux

    if args.out.resolve() == SHIPPED.resolve() and not args.overwrite:
        raise ValueError(f"--out {args.out} is the shipped model; pass --overwrite to replace it")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder")
    config = TrainConfig(teacher_steps=args.teacher_steps, distill_steps=args.distill_steps,
                         batch_size=args.batch_size, lr=args.lr, seed=args.seed, compile=args.compile)
    if (args.out / CHECKPOINT).exists():
        print(f"resuming from {args.out / CHECKPOINT}")

    def report(phase: str, row: dict) -> None:
        print(f"{phase} step {row['step']} ({row['minutes']:.1f} min): " + ", ".join(
            f"{key} {row[key]:.1%}" for key in ("count", "colors", "shapes", "all")), flush=True)

    pipe, record = train_mini_flux(build_mini_pipeline(args.seed), config, args.out, on_eval=report)
    pipe.save_pretrained(args.out)
    write_json(args.out / "training.json", record)
    (args.out / CHECKPOINT).unlink()
    minutes = record["teacher"]["minutes"] + record.get("distill", {}).get("minutes", 0.0)
    print(f"saved to {args.out} after {minutes:.1f} min of training")


def run_bench(args) -> None:
    from ..reporting import print_and_save
    from .benchmark import format_mini_benchmark, run_mini_benchmark
    from .model import load_mini_pipeline

    if args.out is not None and args.out.exists() and not args.overwrite:
        raise ValueError(f"--out {args.out} exists; pass --overwrite to replace it")
    pipe = load_mini_pipeline(args.model)
    results = run_mini_benchmark(pipe, args.captions, args.reconstructions, args.edits)
    print_and_save(format_mini_benchmark(results), results, args.out)


def _train_command(train) -> None:
    train.description = (
        "Rectified-flow training of a small FluxPipeline on procedurally rendered, captioned 32x32 scenes: a "
        "teacher with caption dropout, then a student with a guidance embedding distilled from classifier-free "
        "guidance. Checkpoints every 200 steps into --out and resumes from there.")
    defaults = TrainConfig()
    train.add_argument("--teacher-steps", type=int, default=defaults.teacher_steps,
                       help=f"teacher AdamW steps (default {defaults.teacher_steps})")
    train.add_argument("--distill-steps", type=int, default=defaults.distill_steps,
                       help=f"guidance-distillation steps (default {defaults.distill_steps})")
    train.add_argument("--batch-size", type=int, default=defaults.batch_size,
                       help=f"scenes per step (default {defaults.batch_size})")
    train.add_argument("--lr", type=float, default=defaults.lr, help=f"teacher peak learning rate (default {defaults.lr})")
    train.add_argument("--seed", type=int, default=defaults.seed, help=f"random seed (default {defaults.seed})")
    train.add_argument("--compile", action="store_true", help="torch.compile the transformer (about 1.3x faster "
                       "per step on a CPU after a two-minute compile)")
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


def configure(name: str, parser) -> None:
    """Arguments of ``mini-train`` or ``mini-bench``."""
    {"mini-train": _train_command, "mini-bench": _bench_command}[name](parser)
