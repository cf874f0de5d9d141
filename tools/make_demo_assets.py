"""Render the bundled demo assets from held-out clips of the demo data set, and the README still.

The demo character (``assets/demo/source.png``) is frame 0 of one test clip and the driving clip
(``assets/demo/driving.mp4``) is another test clip, both re-rendered at a higher resolution than the 64x64 the
demo model was trained on (a clip index gives the same character and motion at any size).  Clips of the test
split are the last indices of ``tpsmm make-dataset`` (``--videos 960`` with the default test fraction 0.2:
768..959), so neither was seen in training.

    python tools/make_demo_assets.py assets --seed 0 --source 769 --driving 784 --overwrite
    tpsmm demo --out /tmp/demo
    python tools/make_demo_assets.py still /tmp/demo/side_by_side.mp4 --frame 10

(the commands that made the bundled assets).

``assets`` refuses to replace existing files unless ``--overwrite`` is given; ``still`` writes
``assets/demo/side_by_side.png`` (the picture at the top of the README).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tpsmm.core.media.image_io import save_image
from tpsmm.core.media.video import VideoReader
from tpsmm.core.media.video_writer import VideoWriter
from tpsmm.trainer.synthetic.dataset import clip_rng
from tpsmm.trainer.synthetic.character import render_character_clip

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


def write_assets(args: argparse.Namespace) -> None:
    if args.source == args.driving:
        raise ValueError("--source and --driving must be different clips (the demo shows motion transfer)")
    out = Path(args.out)
    source = render_character_clip(clip_rng(args.seed, args.source), frames=2, size=args.size)[0]
    driving = render_character_clip(clip_rng(args.seed, args.driving), frames=args.frames, size=args.size)
    save_image(out / "source.png", source, overwrite=args.overwrite)
    with VideoWriter(out / "driving.mp4", fps=args.fps, overwrite=args.overwrite) as writer:
        writer.write(driving)
    print(f"wrote {out / 'source.png'} (clip {args.source}) and {out / 'driving.mp4'} "
          f"(clip {args.driving}, {args.frames} frames at {args.size}x{args.size}, {args.fps} fps)")


def write_still(args: argparse.Namespace) -> None:
    with VideoReader(args.video) as reader:
        for i, frame in enumerate(reader):
            if i == args.frame:
                save_image(args.out, frame, overwrite=True)
                print(f"wrote {args.out} (frame {i} of {args.video})")
                return
    raise ValueError(f"{args.video}: has no frame {args.frame}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assets", help="render source.png and driving.mp4")
    a.add_argument("--seed", type=int, default=0, help="data set seed (as given to tpsmm make-dataset)")
    a.add_argument("--source", type=int, required=True, help="clip index of the character to animate")
    a.add_argument("--driving", type=int, required=True, help="clip index of the driving motion")
    a.add_argument("--frames", type=int, default=48, help="driving frames (default 48)")
    a.add_argument("--size", type=int, default=256, help="frame size (default 256)")
    a.add_argument("--fps", type=float, default=25.0, help="driving clip frame rate (default 25)")
    a.add_argument("--out", default=str(DEMO), help="folder (default: assets/demo)")
    a.add_argument("--overwrite", action="store_true", help="replace existing source.png / driving.mp4")
    a.set_defaults(func=write_assets)
    s = sub.add_parser("still", help="save one frame of a tpsmm demo side-by-side video as the README picture")
    s.add_argument("video", help="side_by_side.mp4 written by tpsmm demo")
    s.add_argument("--frame", type=int, default=24, help="frame index (default 24)")
    s.add_argument("--out", default=str(DEMO / "side_by_side.png"), help="PNG to write")
    s.set_defaults(func=write_still)
    args = p.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as exc:
        print(f"make_demo_assets: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
