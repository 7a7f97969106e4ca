"""Mini-FLUX subcommands: ``mini-autoencoder``, ``mini-text``, ``mini-train``, ``mini-bench`` and ``mini-piebench``."""

from __future__ import annotations

from pathlib import Path

from ..reporting import write_json
from .model import SHIPPED


def run_autoencoder(args) -> None:
    from .autoencoder import train_autoencoder
    from .train_config import AutoencoderConfig, check_device, from_options

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder")
    config = from_options(args, AutoencoderConfig)
    check_device(config.device)
    _, record = train_autoencoder(config, args.out, on_eval=_print_autoencoder_eval)
    write_json(args.out / "autoencoder_training.json", record)
    print(f"saved to {args.out} after {record['minutes']:.1f} min of training; latents: shift_factor "
          f"{record['shift_factor']:.4f}, scaling_factor {record['scaling_factor']:.4f}")


def _print_autoencoder_eval(row: dict) -> None:
    print(f"autoencoder step {row['step']} ({row['minutes']:.1f} min): reconstructions {row['psnr']:.2f} dB, "
          f"read fully right {row['all']:.1%} (shapes {row['shapes']:.1%}, colours {row['colors']:.1%}), "
          f"mean shape IoU {row['iou']:.3f}", flush=True)


def run_text(args) -> None:
    from .model import build_mini_pipeline
    from .text_pretraining import pretrain_text_encoders
    from .train_config import TextConfig, check_device, from_options

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder")
    config = from_options(args, TextConfig)
    check_device(config.device)
    record = pretrain_text_encoders(build_mini_pipeline(config.seed), config, args.out, on_eval=_print_text_eval)
    print(f"saved to {args.out} after {record['minutes']:.1f} min of training; `mini-train --text-encoders "
          f"{args.out}` trains a mini FLUX on them, frozen")


def _print_text_eval(row: dict) -> None:
    print(f"text step {row['step']} ({row['minutes']:.1f} min): binding CLIP {row['binding_clip']:.1%}, "
          f"T5 {row['binding_t5']:.1%} (chance 50%); retrieval CLIP {row['retrieval_clip']:.1%}, "
          f"T5 {row['retrieval_t5']:.1%}", flush=True)


def run_train(args) -> None:
    import json

    from .model import build_mini_pipeline, load_mini_pipeline, load_text_encoders, save_mini_pipeline
    from .train import chain_minutes, run_minutes, train_mini_flux
    from .train_config import TrainConfig, check_device, from_options

    if args.out.resolve() == SHIPPED.resolve() and not args.overwrite:
        raise ValueError(f"--out {args.out} is the shipped model; pass --overwrite to replace it")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder")
    if args.init is not None and args.autoencoder is not None:
        raise ValueError("--init continues a trained mini FLUX on its own autoencoder (its transformer knows those "
                         "latents only); --autoencoder is for a fresh one")
    config = from_options(args, TrainConfig)
    check_device(config.device)
    init = None
    if args.init is not None:
        if not (args.init / "model_index.json").is_file():
            raise ValueError(f"--init {args.init} holds no model_index.json; give a folder saved by mini-train")
        init = {"path": str(args.init)}
        if (args.init / "training.json").is_file():
            init["training"] = json.loads((args.init / "training.json").read_text())
    elif args.autoencoder is not None:
        init = {"autoencoder": str(args.autoencoder)}
        if (args.autoencoder / "autoencoder_training.json").is_file():
            init["autoencoder_training"] = json.loads((args.autoencoder / "autoencoder_training.json").read_text())
    if args.text_encoders is not None:
        init = {**(init or {}), "text_encoders": str(args.text_encoders)}
        if (args.text_encoders / "text_pretraining.json").is_file():
            init["text_pretraining"] = json.loads((args.text_encoders / "text_pretraining.json").read_text())
    if args.init is None:
        pipe = build_mini_pipeline(config.seed, args.autoencoder, args.text_encoders)
    else:
        pipe = load_mini_pipeline(args.init)
        if args.text_encoders is not None:  # the transformer keeps what it draws and learns to read the new tokens
            pipe.register_modules(**load_text_encoders(args.text_encoders))
    pipe, record = train_mini_flux(pipe, config, args.out, on_eval=_print_eval, init=init)
    save_mini_pipeline(pipe, args.out)
    write_json(args.out / "training.json", record)
    print(f"saved to {args.out} after {run_minutes(record):.1f} min of training ({chain_minutes(record):.1f} min "
          "with --init's and the autoencoder's)")


def _print_eval(phase: str, row: dict) -> None:
    print(f"{phase} step {row['step']} ({row['minutes']:.1f} min): count {row['count']:.1%}, "
          f"colours {row['colors']:.1%}, shapes {row['shapes']:.1%}, all {row['all']:.1%} (one object "
          f"{row['one_all']:.1%}, two {row['two_all']:.1%}; two-object errors: count {row['two_count']:.1%}, "
          f"colour {row['two_colour']:.1%}, binding {row['two_binding']:.1%}, shape {row['two_shape']:.1%}), "
          f"reconstruction {row['reconstruction_psnr']:.2f} dB (worst {row['worst_reconstruction_psnr']:.2f})",
          flush=True)


def run_bench(args) -> None:
    import json

    from ..reporting import print_and_save, terminal_progress
    from .benchmark import format_mini_benchmark, markdown_tables, run_mini_benchmark, update_rows
    from .model import load_mini_pipeline
    from .train_config import check_device

    if args.out is not None and args.out.exists() and not args.overwrite:
        raise ValueError(f"--out {args.out} exists; pass --overwrite to replace it")
    if args.markdown is not None:  # tables from saved results: nothing to run
        print(markdown_tables(json.loads(args.markdown.read_text())))
        return
    check_device(args.device)
    if args.update is not None:
        if not args.rows:
            raise ValueError("--update FILE measures the rows named by --rows again; give --rows")
        pipe = load_mini_pipeline(args.model, args.device)
        results = update_rows(pipe, json.loads(args.update.read_text()), args.rows, terminal_progress())
        print_and_save(format_mini_benchmark(results), results, args.update)
        return
    pipe = load_mini_pipeline(args.model, args.device)
    results = run_mini_benchmark(pipe, args.captions, args.reconstructions, args.edits, terminal_progress())
    print_and_save(format_mini_benchmark(results), results, args.out)


def run_piebench(args) -> None:
    from .piebench import write_mini_piebench

    count = write_mini_piebench(args.out, args.per_kind, overwrite=args.overwrite)
    print(f"wrote {count} cases into {args.out}")


def _autoencoder_command(autoencoder) -> None:
    from .train_config import AutoencoderConfig, add_options

    autoencoder.description = ("Train the mini FLUX's autoencoder (a diffusers AutoencoderKL laid out like FLUX's: "
                               "16 latent channels, shift and scale measured on the data) on rendered scenes; "
                               "checkpoints in --out, and a rerun with the same --out resumes. Then "
                               "`mini-train --autoencoder OUT` trains a mini FLUX on its latents.")
    add_options(autoencoder, AutoencoderConfig)
    autoencoder.add_argument("--out", type=Path, default=Path("out/mini_autoencoder"),
                             help="output folder (default out/mini_autoencoder)")
    autoencoder.set_defaults(run=run_autoencoder)


def _text_command(text) -> None:
    from .train_config import TextConfig, add_options

    text.description = ("Pretrain the mini FLUX's CLIP and T5 text encoders contrastively against a small image "
                        "encoder on rendered scenes, with colour-swapped captions as hard negatives, so their tokens "
                        "bind each colour to its shape (as FLUX's pretrained encoders do); checkpoints in --out, and "
                        "a rerun resumes. Then `mini-train --text-encoders OUT` trains on them, frozen.")
    add_options(text, TextConfig)
    text.add_argument("--out", type=Path, default=Path("out/mini_text"), help="output folder (default out/mini_text)")
    text.set_defaults(run=run_text)


def _train_command(train) -> None:
    from .train_config import TrainConfig, add_options

    train.description = ("Train a mini FLUX.1-dev on procedurally rendered, captioned 32x32 scenes: a rectified-flow "
                         "teacher with caption dropout, then a student that distils its classifier-free guidance "
                         "into a guidance embedding. Checkpoints in --out; a rerun with the same --out resumes.")
    train.add_argument("--init", type=Path, default=None,
                       help="fine-tune this trained mini FLUX without guidance embedding instead of fresh weights")
    train.add_argument("--autoencoder", type=Path, default=None,
                       help="a trained autoencoder (mini-autoencoder's --out) for a fresh latent mini FLUX "
                       "(default: the pixel design, no autoencoder)")
    train.add_argument("--text-encoders", type=Path, default=None,
                       help="pretrained text encoders (mini-text's --out) for a fresh mini FLUX (default: random), or, with "
                       "--init, in place of that model's own")
    add_options(train, TrainConfig)
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
    bench.add_argument("--device", default="cpu", help="where the model runs, in float32: cpu or cuda[:N] (default cpu)")
    bench.add_argument("--out", type=Path, default=None, help="write the results JSON here (a new file)")
    bench.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing file")
    bench.add_argument("--markdown", type=Path, default=None, metavar="RESULTS_JSON",
                       help="print the README's tables from a saved results file instead of running")
    bench.add_argument("--update", type=Path, default=None, metavar="RESULTS_JSON",
                       help="measure only the rows --rows names again, on that saved file's captions and cases, and "
                       "write them into it")
    bench.add_argument("--rows", nargs="+", default=None, metavar="LABEL",
                       help="rows for --update, by label: text to image ('fireflow 10') or editing ('rf_inversion 28')")
    bench.set_defaults(run=run_bench)


def _piebench_command(piebench) -> None:
    piebench.description = ("Held-out scenes of the mini FLUX's world as a PIE-Bench folder (mapping_file.json with "
                            "bracketed prompts and run-length masks, annotation_images/): run it with "
                            "`python -m fireflow_edu piebench --data DIR --model mini --out OUT`.")
    piebench.add_argument("--out", type=Path, default=Path("out/mini_piebench"),
                          help="folder to write (default out/mini_piebench)")
    piebench.add_argument("--per-kind", type=int, default=10, help="cases per edit kind (default 10; 5 kinds)")
    piebench.add_argument("--overwrite", action="store_true",
                          help="allow --out to hold a PIE-Bench, or images this would write, already")
    piebench.set_defaults(run=run_piebench)


def configure(name: str, parser) -> None:
    """Arguments of ``mini-autoencoder``, ``mini-text``, ``mini-train``, ``mini-bench`` or ``mini-piebench``."""
    {"mini-autoencoder": _autoencoder_command, "mini-text": _text_command, "mini-train": _train_command,
     "mini-bench": _bench_command, "mini-piebench": _piebench_command}[name](parser)
