"""``tpsmm convert`` and ``tpsmm info`` (``tpsmm animate`` lives in :mod:`tpsmm.core.cli.animate`)."""
from __future__ import annotations

import argparse

from ..model.checkpoint import convert_official
from ..animation.animator import load_model
from ..model.config import PRESETS

__all__ = ["register"]


def _convert(args: argparse.Namespace) -> int:
    from ..media.outputs import check_outputs

    check_outputs([("output", args.output)], inputs={args.input: "the input checkpoint"}, overwrite=args.overwrite,
                  kinds=False)
    model = convert_official(args.input, args.output, config=args.config, image_size=args.image_size,
                             overwrite=args.overwrite)
    print(f"wrote {args.output}: networks {', '.join(model.present_networks())}, "
          f"image size {model.config.image_size}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(args.checkpoint)
    print(f"checkpoint: {args.checkpoint}")
    print("config:")
    for key, value in model.config.to_dict().items():
        print(f"  {key}: {value}")
    print("networks:")
    total = 0
    for name in model.present_networks():
        n = sum(p.numel() for p in getattr(model, name).parameters())
        total += n
        if name == "bg_predictor" and model.config.bg_motion == "lk":
            print(f"  {name}: measured by a Lucas-Kanade {model.config.bg_lk_model} fit (no weights)")
        else:
            print(f"  {name}: {n:,} parameters")
    missing = sorted({"bg_predictor", "avd_network"} - set(model.present_networks()))
    if missing:
        print(f"  (absent: {', '.join(missing)})")
    print(f"total: {total:,} parameters")
    return 0


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert an official .pth.tar checkpoint to .safetensors",
                       description="Convert a release-layout TPSMM checkpoint (read safely with "
                                   "weights_only=True) to a tpsmm .safetensors file.")
    p.add_argument("input", help="official checkpoint (.pth.tar)")
    p.add_argument("output", help="output .safetensors file")
    p.add_argument("--config", help=f"preset ({', '.join(PRESETS)}) or release YAML; default: inferred from "
                                    "tensor shapes")
    p.add_argument("--image-size", type=int, help="inference size (default: the config's, or 384 when the file "
                                                  "name mentions 384/ted, else 256)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_convert)

    p = sub.add_parser("info", help="print a checkpoint's config, networks and parameter counts")
    p.add_argument("checkpoint", help=".safetensors or official .pth.tar")
    p.set_defaults(func=_info)
