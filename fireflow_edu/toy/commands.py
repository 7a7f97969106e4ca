"""The ``demo`` command: Figure 2 on the 2D toy, with its table."""

from __future__ import annotations

import time
from pathlib import Path

from ..config import fast_mode
from ..reporting import write_json


def configure(name: str, demo) -> None:
    """Arguments of ``demo`` (the only command here)."""
    demo.description = ("Train a 1-Rectified Flow between two 2D Gaussian mixtures, reflow it into a 2-RF, "
                        "run euler / midpoint / fireflow at the same NFE, write figure2.png and metrics.json into "
                        "--out and print the table (its run time on 2 CPU cores is in the README).")
    demo.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    demo.add_argument("--fast", action="store_true",
                      help="quick look: 2,000 training iterations per flow instead of 10,000 "
                      "(also on when FIREFLOW_EDU_FAST=1)")
    demo.add_argument("--iterations", type=int, default=None,
                      help="Adam iterations for each of 1-RF and 2-RF (default 10000, or 2000 with --fast)")
    demo.add_argument("--reflow-pairs", type=int, default=10_000,
                      help="noise points simulated through 1-RF to build the 2-RF coupling (default 10000)")
    demo.add_argument("--nfe", type=int, default=20,
                      help="function-evaluation budget per solver: euler NFE steps, midpoint NFE/2, "
                      "fireflow NFE-1 (default 20)")
    demo.add_argument("--samples", type=int, default=2000,
                      help="samples generated and compared with the target, at most 2000 (default 2000)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bars")
    demo.set_defaults(run=run_demo)


def run_demo(args) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import plot_figure2
    from ..solvers import num_steps_for_nfe
    from .experiment import FIGURE2_METHODS, compare_solvers, straightness_report, train_toy_flows

    quick = args.fast or fast_mode()
    iterations = args.iterations or (2000 if quick else 10_000)
    for name, value in (("--iterations", iterations), ("--reflow-pairs", args.reflow_pairs), ("--nfe", args.nfe)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if not 2 <= args.samples <= 2000:
        raise ValueError(f"--samples must be between 2 and 2000 (exact W2 assignment), got {args.samples}")
    for method in FIGURE2_METHODS:  # every solver must fit the NFE budget before a minute of training
        num_steps_for_nfe(method, args.nfe)
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder (it will hold figure2.png and metrics.json)")
    start = time.perf_counter()
    flows = train_toy_flows(iterations, args.reflow_pairs, seed=args.seed, progress=not args.no_progress)
    # a quick look measures mode mass on fewer points against a coarser (still 25x finer) reference solution
    measure = {"mass_samples": 10_000 if quick else 60_000, "reference_steps": 250 if quick else 1000}
    comparison = compare_solvers(flows.rf2, flows.source, flows.target, nfe=args.nfe, num_samples=args.samples,
                                 progress=not args.no_progress, **measure)
    metrics = {
        "iterations": iterations,
        **measure,
        "hidden": flows.rf1.net[0].out_features,
        "reflow_pairs": args.reflow_pairs,
        "seed": args.seed,
        "straightness": straightness_report(flows),
        "nfe_budget": args.nfe,
        "w2_draws": comparison["draws"],
        "w2_floor": comparison["w2_floor"],
        "w2_exact_sampler": comparison["w2_exact_sampler"],
        "solvers_on_2rf": comparison["methods"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    axes = plot_figure2(comparison)
    axes[0].figure.suptitle(f"2-Rectified Flow, NFE = {args.nfe} per solver")
    axes[0].figure.tight_layout(rect=(0, 0, 1, 0.94))
    axes[0].figure.savefig(args.out / "figure2.png", dpi=120, bbox_inches="tight")  # keep the tick labels
    plt.close(axes[0].figure)
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    write_json(args.out / "metrics.json", metrics)
    print(format_demo_table(metrics))
    print(f"wrote {args.out / 'figure2.png'} and {args.out / 'metrics.json'} in {metrics['seconds']} s")
    return metrics


def format_demo_table(metrics: dict) -> str:
    s = metrics["straightness"]
    lines = [
        f"straightness: 1-RF {s['1-RF']:.3f}, 2-RF {s['2-RF']:.4f} ({s['1-RF'] / s['2-RF']:.0f}x straighter)",
        f"{'method':<10} {'steps':>5} {'NFE':>4} {'W2 to target':>14} {'mass error':>10} {'precision':>9} "
        f"{'recall':>6} {'RMSE to exact ODE':>18}",
    ]
    for method, row in metrics["solvers_on_2rf"].items():
        w2 = f"{row['w2_to_target']:.3f}±{row['w2_std']:.3f}"
        lines.append(f"{method:<10} {row['steps']:>5} {row['nfe']:>4} {w2:>14} {row['mode_mass_error']:>10.4f} "
                     f"{row['precision']:>9.3f} {row['recall']:>6.3f} {row['rmse_to_reference']:>18.4f}")
    lines.append(f"W2 (mean ± std over {metrics['w2_draws']} draws) of an exact sampler: "
                 f"{metrics['w2_exact_sampler']:.3f}; of two samples with exact mode counts: {metrics['w2_floor']:.3f}")
    return "\n".join(lines)
