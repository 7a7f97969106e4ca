"""Command line of fireflow_edu: start with "python -m fireflow_edu demo --out DIR"; each command has --help.

Commands are registered lazily: the parser names every command, but only the chosen one's module (and
its heavy dependencies: diffusers, matplotlib, nbformat) is imported, so --help and the demo start at once.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module
from importlib.util import find_spec

COMMANDS = {  # name: (module with configure(name, parser), the extra it needs, one-line help)
    "demo": ("toy.commands", None, "train 1-RF and 2-RF on the 2D Gaussian mixtures and compare solvers at equal "
             "NFE (Figure 2)"),
    "edit": ("editing.commands", "flux", "edit an image with a prompt change (FireFlow's recipe, RF-Inversion or "
             "FlowEdit; FLUX or SD3)"),
    "reconstruct": ("editing.commands", "flux", "invert and regenerate an image; report RMSE, PSNR, SSIM"),
    "bench": ("flux.commands", "flux", "edit speed: euler 28+28, rf_solver 15, fireflow 8 and 15, rf_inversion "
              "28+28, flowedit"),
    "batch": ("editing.commands", "flux", "edit every case of a JSONL file; shards across processes/GPUs"),
    "piebench": ("piebench.commands", "flux", "PIE-Bench with the published protocol: per-type table of the paper's "
                 "metrics"),
    "mini-autoencoder": ("mini.commands", "flux", "train the mini FLUX's autoencoder on rendered scenes (CPU)"),
    "mini-text": ("mini.commands", "flux", "pretrain the mini FLUX's text encoders contrastively on rendered scenes"),
    "mini-train": ("mini.commands", "flux", "train the mini FLUX from scratch on rendered scenes (CPU)"),
    "mini-bench": ("mini.commands", "flux", "score the mini FLUX: text to image, reconstruction, editing"),
    "mini-piebench": ("mini.commands", "flux", "write a mini PIE-Bench (PIE-Bench's format) from the mini FLUX's "
                      "scenes"),
    "assignments": ("grading.commands", "grading", "generate the student notebooks from the solutions"),
    "grade": ("grading.commands", "grading", "grade a folder of submitted notebooks into a CSV"),
}


EXTRA_MARKERS = {"flux": "diffusers", "grading": "nbclient"}  # a module each extra installs


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of ``command`` (None: just the list of commands)."""
    parser = argparse.ArgumentParser(prog="python -m fireflow_edu", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, extra, help) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help, description=help)
        if name == command:
            try:
                if extra and find_spec(EXTRA_MARKERS[extra]) is None:  # checked up front: --help works without it
                    raise ImportError(f"No module named {EXTRA_MARKERS[extra]!r}")
                configure = import_module(f"{__package__}.{module}").configure
            except ImportError as error:  # extras are optional: the CPU toy needs none
                parser.exit(2, f"error: {name} needs the {extra!r} extra: pip install 'fireflow_edu[{extra}]' "
                               f"(or pip install -r requirements.txt in the repository); {error}\n")
            configure(name, subparser)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as error:  # bad input: a clear message, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
