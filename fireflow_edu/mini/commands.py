"""Mini-FLUX subcommands: ``mini-train`` and ``mini-bench``."""

from __future__ import annotations

import time
from pathlib import Path

from ..reporting import write_json
from .model import SHIPPED


def run_train(args) -> None:
    import numpy as np

    from .model import build_mini_pipeline
    from .train import train_mini_flux

    if args.out.resolve() == SHIPPED.resolve() and not args.overwrite:
        raise ValueError(f"--out {args.out} is the shipped model; pass --overwrite to replace it")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder")
    pipe = build_mini_pipeline(args.seed)
    start = time.perf_counter()
    losses = train_mini_flux(pipe, args.steps, args.batch_size, args.lr, args.seed)
    pipe.save_pretrained(args.out)
    record = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
              "seconds": round(time.perf_counter() - start, 1), "final_loss": float(np.mean(losses[-200:])),
              "loss_every_100": [float(np.mean(losses[i:i + 100])) for i in range(0, len(losses), 100)]}
    write_json(args.out / "training.json", record)
    print(f"saved to {args.out}: {record['seconds']} s, final loss {record['final_loss']:.4f}")


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
    train.description = ("Rectified-flow training of a small FluxPipeline on procedurally rendered, captioned "
                         "32x32 scenes; saves it with save_pretrained.")
    train.add_argument("--steps", type=int, default=5000, help="AdamW steps (default 5000, about 35 min on 2 cores)")
    train.add_argument("--batch-size", type=int, default=64, help="scenes per step (default 64)")
    train.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
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
