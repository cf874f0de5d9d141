"""``tpsmm train``, ``tpsmm train-avd``, ``tpsmm eval`` and ``tpsmm make-dataset``.

``train`` runs alone or under ``torchrun --nproc_per_node N -m tpsmm train ...`` (every rank runs the same
command line; only rank 0 writes). Configuration precedence: ``--config`` (preset or release YAML; without it the
``--init-from`` checkpoint's own config, else vox-256), then ``--model-size``, then ``--set`` entries, then the
dedicated flags (``--batch-size``, ``--image-size`` ...).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys

from .overrides import apply_overrides

__all__ = ["register", "MODEL_SIZES", "apply_overrides", "build_config"]

MODEL_SIZES = {
    "base": {},
    "small": {"gen_block_expansion": 32, "gen_max_features": 256, "dm_block_expansion": 32, "dm_max_features": 512,
              "backbone": "small", "backbone_width": 32},
    "tiny": {"gen_block_expansion": 16, "gen_max_features": 128, "dm_block_expansion": 16, "dm_max_features": 256,
             "backbone": "small", "backbone_width": 16},
}
"""``--model-size``: width changes applied to the config's model (``base`` = as released: ResNet-18 encoders,
generator 64/512, dense motion 64/1024). ``small``/``tiny`` also switch the keypoint and background encoders to
the compact backbone."""
# options fixed by the saved run when resuming (they change what is trained)
_FIXED_ON_RESUME = ("config", "model_size", "set", "batch_size", "accumulate", "num_repeats", "image_size", "amp",
                    "recon_loss", "seed", "init_from")


def build_config(args):
    """The run's :class:`~tpsmm.core.model.config.Config` from ``tpsmm train`` arguments."""
    from ..core.model.checkpoint import CheckpointError, checkpoint_config
    from ..core.model.config import load_config

    if args.config or not args.init_from:
        cfg = load_config(args.config or "vox-256")
    else:  # fine-tuning: the checkpoint's own configuration is the base
        try:
            cfg = checkpoint_config(args.init_from)
        except CheckpointError as exc:
            raise ValueError(f"--init-from: {exc}") from None
    model = cfg.model.replace(**MODEL_SIZES[args.model_size or "base"])
    cfg = dataclasses.replace(cfg, model=model)
    cfg = apply_overrides(cfg, args.set or [])
    train = {k: v for k, v in (("batch_size", args.batch_size), ("num_repeats", args.num_repeats),
                               ("num_epochs", args.epochs)) if v is not None}
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))
    if args.image_size is not None:
        cfg = dataclasses.replace(cfg, model=cfg.model.replace(image_size=args.image_size))
    size = cfg.model.image_size
    if cfg.dataset.crop_size is not None and cfg.dataset.crop_size != size:  # crops must yield model-size frames
        cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, crop_size=size))
    return cfg


def _train(args) -> int:
    from .data import training_dataset
    from .loop import Trainer, TrainOptions
    from .losses import build_reconstruction_loss
    from .run_dir import read_run

    run_control = dict(max_steps=args.steps, checkpoint_every=args.checkpoint_every, vis_every=args.vis_every,
                       keep_checkpoints=args.keep_checkpoints, workers=args.workers, device=args.device,
                       progress=not args.no_progress, tensorboard=not args.no_tensorboard,
                       vgg_weights=args.vgg_weights, sync_bn=args.sync_bn)
    if args.resume:
        if args.out and os.path.abspath(args.out) != os.path.abspath(args.resume):
            raise ValueError("--out and --resume name different folders (a resumed run continues in its own folder)")
        fixed = [f"--{k.replace('_', '-')}" for k in _FIXED_ON_RESUME if getattr(args, k) not in (None, [], False)]
        if fixed or args.overwrite:
            raise ValueError(f"{', '.join(fixed) or '--overwrite'} cannot be used with --resume: the saved run "
                             "fixes it (see run.json)")
        saved = read_run(args.resume)
        cfg = saved["config"]
        if args.epochs is not None:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_epochs=args.epochs))
        options = dict(saved["options"])
        options.update({k: v for k, v in run_control.items() if v is not None})
        options.update(out_dir=args.resume, progress=run_control["progress"], tensorboard=run_control["tensorboard"],
                       sync_bn=args.sync_bn or options.get("sync_bn", False))
        extra = saved["extra"]
        data = args.data or extra["data"]
        cache = args.cache_frames or extra.get("cache_frames", False)
    else:
        if not args.data or not args.out:
            raise ValueError("--data and --out are required (or --resume RUN_DIR)")
        cfg = build_config(args)
        options = {k: v for k, v in run_control.items() if v is not None}
        options.update(out_dir=args.out, accumulate=1 if args.accumulate is None else args.accumulate,
                       amp=args.amp or "none",
                       recon_loss=args.recon_loss or "vgg", seed=args.seed or 0,
                       init_from=os.path.abspath(args.init_from) if args.init_from else None)
        data, cache = args.data, args.cache_frames
        extra = {"data": os.path.abspath(data), "cache_frames": cache}
    opts = TrainOptions(**options)
    reconstruction = build_reconstruction_loss(cfg.train, opts.recon_loss, opts.vgg_weights)  # fail before the data
    dataset = training_dataset(cfg, data, cache_frames=cache, seed=opts.seed, num_repeats=cfg.train.num_repeats)
    trainer = Trainer(cfg, dataset, opts, resume=bool(args.resume), overwrite=args.overwrite,
                      run_extra=extra, reconstruction=reconstruction)
    result = trainer.run()
    if int(os.environ.get("RANK", "0")) == 0:
        if result.status == "interrupted":
            print(f"interrupted at step {result.step}; checkpoint {result.checkpoint}; continue with "
                  f"`tpsmm train --resume {opts.out_dir}`", file=sys.stderr)
        else:
            print(f"finished at step {result.step} (epoch {result.epoch}); model: "
                  f"{os.path.join(opts.out_dir, 'model.safetensors')}")
    return 130 if result.status == "interrupted" else 0


def _train_avd(args) -> int:
    from .avd_train import train_avd_command

    return train_avd_command(args)


def _add_train(sub) -> None:
    from ..core.model.config import PRESETS

    p = sub.add_parser(
        "train", help="train TPSMM on your videos (one process or torchrun/DDP)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stage-1 training with the released recipe (Adam 2e-4, MultiStepLR per epoch, TPS dropout, "
                    "background predictor from bg_start, equivariance/warp/bg losses).\n"
                    "Multi-GPU: torchrun --nproc_per_node N -m tpsmm train ... (--batch-size is the global batch).\n"
                    "Smaller models: --model-size small|tiny, or --set model.gen_block_expansion=16 style entries\n"
                    "(SECTION.FIELD=VALUE, SECTION in model/train/dataset/train_avd; see tpsmm.core.model.config).\n"
                    "The perceptual loss needs VGG-19 weights on disk (torchvision's cache or --vgg-weights);\n"
                    "without them use --recon-loss l1-ssim. Nothing is downloaded.",
        epilog="example: tpsmm train --config vox-256 --data ./mydata --out runs/me --model-size small "
               "--image-size 256 --amp bf16")
    p.add_argument("--config", help=f"preset ({', '.join(PRESETS)}) or release-style YAML (default: the "
                                    "--init-from checkpoint's config, else vox-256)")
    p.add_argument("--data", help="data folder (train/ and test/, or flat)")
    p.add_argument("--out", help="run folder to create (checkpoints, metrics, pictures)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run files in --out (other files are kept)")
    p.add_argument("--init-from", metavar="CHECKPOINT",
                   help="fine-tune: start from this model's weights (.safetensors or official .pth.tar) instead "
                        "of a random initialisation; without --config its config is the base (architecture, and "
                        "a tpsmm checkpoint's training recipe)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="stop after N optimizer steps in total")
    g.add_argument("--epochs", type=int, help="number of epochs (default: the config's num_epochs)")
    p.add_argument("--batch-size", type=int, help="global batch size (default: the config's, 28 for vox)")
    p.add_argument("--accumulate", type=int, help="micro-batches per step (gradient accumulation; default 1)")
    p.add_argument("--num-repeats", type=int, help="data set repeats per epoch (default: the config's)")
    p.add_argument("--image-size", type=int, help="training/inference frame size (multiple of 128 for base sizes)")
    p.add_argument("--model-size", choices=sorted(MODEL_SIZES), help="network widths: base (released), small, tiny")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override any config field")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), help="mixed precision (default none)")
    p.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument("--sync-bn", action="store_true", help="synchronise BatchNorm statistics across GPUs")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 1000)")
    p.add_argument("--vis-every", type=int, help="steps between sample pictures and loss plots (default 500)")
    p.add_argument("--keep-checkpoints", type=int, help="newest checkpoints to keep (default 3)")
    p.add_argument("--recon-loss", choices=("vgg", "l1-ssim"), help="reconstruction loss (default vgg)")
    p.add_argument("--vgg-weights", metavar="FILE", help="VGG-19 ImageNet weights (torchvision vgg19-*.pth)")
    p.add_argument("--workers", type=int, help="data loading processes (default 0)")
    p.add_argument("--cache-frames", action="store_true", help="keep decoded frames in memory (faster epochs)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    p.set_defaults(func=_train)


def register(sub) -> None:
    """Add ``train``, ``train-avd``, ``eval`` and ``make-dataset`` to the ``tpsmm`` sub-parsers."""
    _add_train(sub)
    from .avd_train import add_train_avd_arguments

    p = sub.add_parser("train-avd", help="train the AVD network of a trained checkpoint (stage 2)",
                       description="Stage 2 as released: the other networks are frozen (eval mode); the AVD network "
                                   "learns to rebuild driving keypoints from the source keypoints and randomly "
                                   "scaled driving keypoints (L1).")
    add_train_avd_arguments(p)
    p.set_defaults(func=_train_avd)
    if importlib.util.find_spec("tpsmm.trainer.evaluate") is not None:
        from .eval_cli import add_eval_arguments, eval_command

        p = sub.add_parser("eval", help="video reconstruction evaluation (L1, outputs, JSON report)")
        add_eval_arguments(p)
        p.set_defaults(func=eval_command)
    if importlib.util.find_spec("tpsmm.trainer.synthetic") is not None:
        from .synthetic.dataset import add_make_dataset_arguments, make_dataset_command

        p = sub.add_parser("make-dataset", help="generate a synthetic training set of animated characters")
        add_make_dataset_arguments(p)
        p.set_defaults(func=make_dataset_command)
