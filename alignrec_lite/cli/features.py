"""Stage-1 commands of ``alignrec-lite``: ``features``, ``pretrain-ica`` and ``evaluate-features``.

Each handler takes the parsed arguments and returns the exit status; input errors
are raised as :class:`~alignrec_lite.errors.AlignRecError` and printed by the CLI.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .common import (
    Subcommands,
    add_command,
    add_dataset,
    add_device,
    add_overwrite,
    add_quiet,
    add_seed,
    dataset_folder,
)


def _none(spec: str | None) -> str | None:
    return None if spec is None or spec.lower() == "none" else spec


# ---------------------------------------------------------------------- handlers
def _cmd_features(args: argparse.Namespace) -> int:
    """``alignrec-lite features DIR``: write image_feat.npy / text_feat.npy + features.json."""
    from ..encoders import extract_features
    from ..files import out_lock

    folder = dataset_folder(args)
    with out_lock(folder, flag="DIR"):  # one writer of a dataset's feature files at a time
        man = extract_features(
            folder,
            _none(args.image_encoder),
            _none(args.text_encoder),
            batch_size=args.batch_size,
            device=args.device,
            progress=not args.quiet,
            overwrite=args.overwrite,
            seed=args.seed,
            precision=args.precision,
            keep_cache=args.keep_cache,
        )
    for modality in ("image", "text"):
        e = man.get(modality)
        if not isinstance(e, dict) or "sha256" not in e:
            continue
        extra = f", {e['missing_images']} missing image(s) -> mean vector" if e.get("missing_images") else ""
        speed = f", {e['items_per_second']} items/s" if e.get("items_per_second") else ""
        print(f"{e['file']:15s} {tuple(e['shape'])} from {e['encoder']} ({e['weights']}){speed}{extra}")
    print(f"manifest: {folder / 'features.json'}")
    return 0


def _unset(value, default):
    return default if value is None else value


def _pretrain_and_report(
    args: argparse.Namespace, pretrain: Callable[..., dict], cfg: Any, what: str, *, untrained: str | None = None
) -> int:
    """Run a stage-1 pre-training (``pretrain_ica`` / ``pretrain_multiway``) on the dataset folder, one writer at a
    time, and print what it wrote; ``untrained`` replaces the final loss when no epoch ran."""
    from ..files import out_lock

    folder = dataset_folder(args)
    with out_lock(folder, flag="DIR"):  # one writer of a dataset's feature files at a time
        result = pretrain(
            folder, cfg, out=args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet
        )
    loss = untrained if untrained and not result["epochs_run"] else f"final loss {result['final_loss']:.4f}"
    print(
        f"mm_feat.npy {tuple(result['shape'])}: {what}, {result['epochs_run']} epoch(s), "
        f"{result['train_seconds']:.1f} s, {loss}"
    )
    print(f"checkpoints: {result['run_dir']}")
    return 0


def _cmd_pretrain_multiway(args: argparse.Namespace) -> int:
    """``alignrec-lite pretrain-ica DIR --encoder multiway``: masked multimodal modelling, mm_feat.npy."""
    from ..multiway import MultiwayConfig, pretrain_multiway

    for flag, value in (
        ("--image-encoder", args.image_encoder),
        ("--text-encoder", args.text_encoder),
        ("--arch", args.arch),
        ("--pretrained", args.pretrained),
    ):
        if value:
            raise ConfigError(
                f"{flag} belongs to the two-tower encoder", row=flag, fix="drop it, or use --encoder mmenc"
            )
    d = MultiwayConfig()
    cfg = MultiwayConfig(
        dim=_unset(args.embed_dim, d.dim),
        layers=_unset(args.layers, d.layers),
        tokenizer=_unset(args.tokenizer, d.tokenizer),
        epochs=_unset(args.epochs, d.epochs),
        batch_size=_unset(args.batch_size, d.batch_size),
        lr=_unset(args.lr, d.lr),
        pretrain=not args.no_pretrain,
        precision=args.precision,
        device=args.device,
        seed=args.seed,
    )
    return _pretrain_and_report(
        args, pretrain_multiway, cfg, "Multiway encoder", untrained="random init, no pre-training"
    )


def _cmd_pretrain_ica(args: argparse.Namespace) -> int:
    """``alignrec-lite pretrain-ica DIR``: train MMEnc with ICA (or the Multiway encoder) and write mm_feat.npy."""
    if getattr(args, "encoder", "mmenc") == "multiway":
        return _cmd_pretrain_multiway(args)
    if args.no_pretrain or args.layers is not None or args.tokenizer is not None:
        raise ConfigError(
            "--no-pretrain, --layers and --tokenizer belong to the Multiway encoder",
            row="--encoder",
            fix="add --encoder multiway, or drop them",
        )
    from ..ica import ICAConfig, pretrain_ica

    d = ICAConfig()
    image = args.image_encoder
    text = args.text_encoder
    if args.arch:
        tag = f"@{args.pretrained}" if args.pretrained else ""
        image = image or f"openclip:{args.arch}{tag}"
        text = text or f"openclip:{args.arch}{tag}"
    elif args.pretrained:
        raise ConfigError(
            "--pretrained needs --arch", row="--pretrained", fix="e.g. --arch ViT-B-32 --pretrained openai"
        )
    cfg = ICAConfig(
        image_encoder=image or "tiny-cnn",
        text_encoder=text or "minilm",
        fusion=args.fusion,
        embed_dim=_unset(args.embed_dim, d.embed_dim),
        epochs=_unset(args.epochs, d.epochs),
        batch_size=_unset(args.batch_size, d.batch_size),
        lr=_unset(args.lr, d.lr),
        mask_weight=args.mask_weight,
        mask_prob=args.mask_prob,
        freeze_text=not args.train_text,
        freeze_image=args.freeze_image,
        precision=args.precision,
        device=args.device,
        seed=args.seed,
    )
    return _pretrain_and_report(args, pretrain_ica, cfg, f"fusion {cfg.fusion}")


def _cmd_evaluate_features(args: argparse.Namespace) -> int:
    """``alignrec-lite evaluate-features DIR``: zero-shot, item-CF, mask-modality, geometry."""
    from ..feature_eval import evaluate_features, format_table

    table = evaluate_features(
        dataset_folder(args),
        sources=args.source or None,
        split=args.split,
        mask_ratio=args.mask_ratio,
        knn_k=args.knn_k,
        shrink=args.shrink,
        seed=args.seed,
        progress=not args.quiet,
        batch_users=args.batch_users,
    )
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print(format_table(table))
    return 0


# ---------------------------------------------------------------------- parser
def register(sub: Subcommands) -> None:
    """Add ``features``, ``pretrain-ica`` and ``evaluate-features`` to the ``alignrec-lite`` parser."""
    f = add_command(
        sub,
        "features",
        "extract image/text item features with a cache and a manifest",
        "alignrec-lite features data/ml --image-encoder tiny-cnn --text-encoder minilm\n"
        "  alignrec-lite features data/ml --image-encoder openclip:ViT-B-32@openai "
        "--text-encoder openclip:ViT-B-32@openai --device cuda --precision amp\n\n"
        "encoders: tiny-cnn | tiny-vit | openclip:ARCH[@TAG] (images); minilm | openclip:ARCH[@TAG] (texts);\n"
        "none skips a modality. An interrupted run resumes from DIR/.cache/features/.",
    )
    add_dataset(f, "dataset (name or MMRec folder with items.csv); the feature files are written into its folder")
    f.add_argument("--image-encoder", default="tiny-cnn", help="image tower spec (default tiny-cnn; none to skip)")
    f.add_argument("--text-encoder", default="minilm", help="text tower spec (default minilm; none to skip)")
    f.add_argument("--batch-size", type=int, default=64)
    add_device(f)
    f.add_argument("--precision", choices=["fp32", "amp"], default="fp32")
    add_seed(f, 0, "seed of random tower weights")
    add_overwrite(f, "replace features made by another encoder")
    f.add_argument("--keep-cache", action="store_true", help="keep the per-chunk shards after writing")
    add_quiet(f)
    f.set_defaults(func=_cmd_features)

    p = add_command(
        sub,
        "pretrain-ica",
        "pre-train the multimodal encoder (ICA) and write mm_feat.npy",
        "alignrec-lite pretrain-ica data/ml --epochs 10 --fusion mean\n"
        "  alignrec-lite pretrain-ica data/ml --arch ViT-B-32 --pretrained openai --precision amp "
        "--batch-size 256 --device cuda\n"
        "  alignrec-lite pretrain-ica data/ml --encoder multiway --epochs 10     "
        "# one Multiway Transformer, masked modelling\n"
        "  alignrec-lite pretrain-ica data/ml --encoder multiway --no-pretrain   # its random init",
    )
    add_dataset(p, "dataset (name or MMRec folder with items.csv); mm_feat.npy is written into its folder")
    p.add_argument(
        "--encoder",
        choices=["mmenc", "multiway"],
        default="mmenc",
        help="mmenc: two towers + CLIP/masked-modality loss (default); multiway: one BEiT-3-style "
        "Multiway Transformer pre-trained by masked image/text modelling",
    )
    p.add_argument("--image-encoder", help="image tower spec (default tiny-cnn)")
    p.add_argument("--text-encoder", help="text tower spec (default minilm)")
    p.add_argument("--arch", help="open_clip architecture for both towers (e.g. ViT-B-32)")
    p.add_argument("--pretrained", help="open_clip pretrained tag for --arch (e.g. openai)")
    p.add_argument("--fusion", choices=["mean", "concat", "mlp"], default="mean", help="how the towers are fused")
    p.add_argument("--embed-dim", type=int, help="shared embedding size (default 128) / Multiway width (default 96)")
    p.add_argument("--epochs", type=int, help="training epochs (default 10)")
    p.add_argument("--batch-size", type=int, help="items per batch (default 128; multiway 32)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-3; multiway 2e-3)")
    p.add_argument("--layers", type=int, help="multiway: Transformer blocks (default 3)")
    p.add_argument("--tokenizer", choices=["words", "minilm"], help="multiway: title tokeniser (default words)")
    p.add_argument(
        "--no-pretrain", action="store_true", help="multiway: keep the random initialisation (0 steps), for comparison"
    )
    p.add_argument("--mask-weight", type=float, default=0.5, help="weight of the masked-modality objective")
    p.add_argument("--mask-prob", type=float, default=0.5, help="share of items whose one modality is masked")
    p.add_argument("--train-text", action="store_true", help="also train the text tower (default: frozen, LiT-style)")
    p.add_argument("--freeze-image", action="store_true", help="freeze the image tower (train the heads only)")
    p.add_argument("--precision", choices=["fp32", "amp"], default="fp32")
    add_device(p)
    add_seed(p, 0, "seed of the initialisation and the batches")
    p.add_argument("--out", help="run folder for checkpoints (default DIR/.cache/ica or DIR/.cache/multiway)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the run folder")
    add_overwrite(p, "replace an existing mm_feat.npy / run")
    add_quiet(p)
    p.set_defaults(func=_cmd_pretrain_ica)

    e = add_command(
        sub,
        "evaluate-features",
        "judge item features without training: zero-shot, item-CF, masking",
        "alignrec-lite evaluate-features data/ml --source text --source image+text --source mm",
    )
    add_dataset(e, "dataset (name or MMRec folder) with feature files")
    e.add_argument("--source", action="append", help="feature source (repeatable): image, text, image+text, mm")
    e.add_argument("--split", choices=["valid", "test"], default="test")
    e.add_argument("--mask-ratio", type=float, default=0.5, help="share of items whose modality is masked")
    e.add_argument("--knn-k", type=int, default=10, help="neighbours kept per item in item-CF")
    e.add_argument("--shrink", type=float, default=10.0, help="item-CF similarity shrink term")
    e.add_argument(
        "--batch-users",
        type=int,
        default=1024,
        help="users scored at once (the item-kNN similarity takes twice as many rows); lower it when memory is short",
    )
    add_seed(e, 0, "seed of the masked items and the geometry subsamples")
    e.add_argument("--json", action="store_true", help="print the full result as JSON")
    add_quiet(e)
    e.set_defaults(func=_cmd_evaluate_features)
