"""FLUX's own subcommand: ``bench``, the edit-speed benchmark of FLUX's transformer."""

from __future__ import annotations

from pathlib import Path

from ..models import model_options, pipeline_from_options


def run_bench(args) -> None:
    import torch

    from ..reporting import print_and_save, terminal_progress
    from .benchmark import format_benchmark, random_transformer, run_benchmark

    if args.tiny_sd3:
        raise ValueError("bench times FLUX's transformer (its FireFlow edit against Euler 28+28); SD3 is not timed")
    if args.tiny:
        from .tiny import build_tiny_pipeline

        transformer = build_tiny_pipeline().transformer
    elif args.random_weights:
        if not torch.cuda.is_available():
            raise ValueError("--random-weights builds a 12B-parameter transformer: it needs a CUDA GPU "
                             "(use --tiny to exercise the benchmark on a CPU)")
        transformer = random_transformer("cuda")
    else:
        pipe = pipeline_from_options(args)
        if type(pipe).__name__ != "FluxPipeline":
            raise ValueError(f"bench times FLUX's transformer; {args.model} is a {type(pipe).__name__}")
        transformer = pipe.transformer
    if args.compile:
        transformer.compile(fullgraph=False)
    results = run_benchmark(transformer, sizes=args.sizes, repeats=args.repeats, text_tokens=args.text_tokens,
                            progress=terminal_progress())
    results["random_weights"] = bool(args.random_weights or args.tiny)
    results["compiled"] = bool(args.compile)
    print_and_save(format_benchmark(results), results, args.out)


def _bench_command(bench) -> None:
    bench.description = "Times the transformer work of one edit per solver at each size."
    bench.add_argument("--random-weights", action="store_true",
                       help="a full-size FLUX.1-dev-architecture transformer with random bf16 weights (GPU)")
    bench.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="square sizes (default 512 1024)")
    bench.add_argument("--repeats", type=int, default=2, help="timed runs per config after one warm-up (default 2)")
    bench.add_argument("--text-tokens", type=int, default=512, help="T5 tokens (default 512, as FLUX.1-dev)")
    bench.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    model_options(bench)
    bench.set_defaults(run=run_bench)


def configure(name: str, parser) -> None:
    """Arguments of ``bench``."""
    _bench_command(parser)
