"""The ``piebench`` subcommand: PIE-Bench with the published protocol, for any model family."""

from __future__ import annotations

from pathlib import Path

from ..editing.commands import algorithm_options, algorithm_settings
from ..models import model_options, pipeline_from_options


def run_piebench(args) -> None:
    import json

    from ..reporting import terminal_progress
    from .harness import compare_piebench, format_piebench, run_piebench
    from .metrics import PieBenchScorer

    if args.markdown is not None:  # the tables of finished runs: nothing to edit
        summaries = [json.loads(path.read_text()) for path in args.markdown]
        print(format_piebench(summaries[0], hide_absent=True, markdown=True) if len(summaries) == 1
              else compare_piebench(summaries, markdown=True))
        return
    if args.data is None or args.out is None:
        raise ValueError("piebench needs --data (a PIE-Bench folder) and --out (a folder for the edits), "
                         "or --markdown SUMMARY_JSON to print a finished run's table")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder (it holds the edited images, cases/, summary.json)")
    if args.out.resolve() == args.data.resolve():
        raise ValueError("--out must differ from --data: the edited images would replace the sources")
    if (args.out / "mapping_file.json").exists():
        raise ValueError(f"--out {args.out} is a PIE-Bench folder (it holds mapping_file.json): the edited images "
                         "would replace its sources; give another folder")
    settings = algorithm_settings(args, masked=args.use_masks)
    summary = run_piebench(args.data, args.out, lambda device: pipeline_from_options(args, device),
                           lambda device: PieBenchScorer(device, clip=args.clip, dino=args.dino),
                           progress=terminal_progress(), algorithm=args.algorithm, use_masks=args.use_masks,
                           **settings)
    if summary is not None:
        print(format_piebench(summary))
        print(f"wrote {args.out / 'summary.json'}")


def _piebench_command(piebench) -> None:
    piebench.description = ("PIE-Bench with PnPInversion's protocol: edits every case of a PIE-Bench folder "
                            "(mapping_file.json + annotation_images/), scores it with the reference's metrics and "
                            "prints the per-type table. Resumable: cases already in OUT/cases are skipped. Run "
                            "under `accelerate launch -m fireflow_edu piebench ...` to shard.")
    piebench.add_argument("--data", type=Path, default=None, help="PIE-Bench folder (required to run)")
    piebench.add_argument("--out", type=Path, default=None, help="output folder (required to run)")
    piebench.add_argument("--markdown", type=Path, nargs="+", default=None, metavar="SUMMARY_JSON",
                          help="print a finished run's table (its summary.json) as Markdown, metrics absent "
                               "everywhere left out, instead of running; several runs: one row each, all cases")
    piebench.add_argument("--clip", type=Path, default=None,
                          help="local CLIP ViT-L/14 folder (default: the Hugging Face cache)")
    piebench.add_argument("--dino", type=Path, default=None,
                          help="local facebookresearch/dino clone (default: torch hub's cache)")
    piebench.add_argument("--use-masks", action="store_true",
                          help="hand each case's PIE-Bench mask to the editor (fireflow): a configuration of its own, "
                          "not comparable with mask-free numbers")
    algorithm_options(piebench, mask="cases")
    model_options(piebench)
    piebench.set_defaults(run=run_piebench)


def configure(name: str, parser) -> None:
    """Arguments of ``piebench``."""
    _piebench_command(parser)
