"""The rules that live in one place: sizes (``Size``, ``parse_size``, ``check_aspect``), errors that name
fields (``FieldError`` and the CLI's flag table), the AVD and background capability rules, and the one loop
from rendered batches to writers (``write_rendered``)."""
from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_model
from tpsmm.core import AnimationOptions, AnimationPipeline, ModelError
from tpsmm.core.animation.motion import MotionTransfer, require_avd_network
from tpsmm.core.animation.writing import FLOW_SCALE, write_rendered
from tpsmm.core.cli.animate import FLAGS, _flagged
from tpsmm.core.media.errors import FieldError, InputError
from tpsmm.core.media.size import Size, check_aspect, parse_size
from tpsmm.core.media.visualize import flow_to_rgb
from tpsmm.core.model.container import TPSMMNetworks


def test_size_is_height_width_and_text_is_width_first():
    assert parse_size("1024x768") == Size(height=768, width=1024) and str(Size(768, 1024)) == "1024x768"
    assert parse_size("512") == Size(512, 512) and Size.of(7) == (7, 7)
    assert Size.of_image(torch.zeros(2, 30, 40, 3)) == Size(30, 40)
    for bad in ("12x", "axb", "1x2x3", "1x100"):
        with pytest.raises(ValueError):
            parse_size(bad)
    for bad in ((0, 4), (2.5, 4), "44", (True, 3), (1, 2, 3)):
        with pytest.raises(FieldError, match="^output_size: "):
            Size.of(bad, field="output_size")


def test_check_aspect_refuses_different_shapes():
    check_aspect(Size(480, 640), Size(240, 320), allow_stretch=False)             # same shape, other size
    check_aspect(Size(480, 640), Size(640, 480), allow_stretch=True)
    with pytest.raises(InputError, match="source is 640x480 but the driving frames are 480x640"):
        check_aspect(Size(480, 640), Size(640, 480), allow_stretch=False)


def test_field_errors_are_renamed_from_the_table_keeping_their_type():
    exc = ModelError("this checkpoint has no AVD network", field="mode", value="avd")
    assert str(exc) == "mode 'avd': this checkpoint has no AVD network"
    flagged = _flagged(exc)
    assert type(flagged) is ModelError and str(flagged) == "--mode avd: this checkpoint has no AVD network"
    assert str(_flagged(FieldError("expected a whole number >= 1, got 0", field="batch_size"))) == \
        "--batch-size: expected a whole number >= 1, got 0"
    plain = ValueError("batch_size: not a FieldError")                # text is never edited
    assert _flagged(plain) is plain
    assert str(FieldError("no field")) == "no field" and _flagged(FieldError("x", field="nope")).field == "nope"
    with pytest.raises(FieldError) as caught:                          # every option error names its field
        AnimationOptions(feather=-1)
    assert caught.value.field == "feather" and caught.value.field in FLAGS


def test_the_avd_rule_is_raised_from_one_place():
    kp = torch.rand(1, 10, 2)
    with pytest.raises(ModelError) as by_motion:
        MotionTransfer(mode="avd", kp_source=kp)
    no_avd = make_tiny_model()
    no_avd.avd_network = None
    with pytest.raises(ModelError) as by_pipeline:
        AnimationPipeline(no_avd, AnimationOptions(mode="avd"))
    with pytest.raises(ModelError) as direct:
        require_avd_network(None)
    assert str(by_motion.value) == str(by_pipeline.value) == str(direct.value)
    assert by_pipeline.value.field == "mode"


def test_the_background_rule_picks_the_optional_networks(tiny_config):
    learned = tiny_config.replace(bg=True, bg_motion="predictor")
    without = TPSMMNetworks.for_networks(learned, ["kp_detector"])
    assert without.bg_predictor is None and without.config.bg is False and without.avd_network is None
    assert TPSMMNetworks.for_networks(learned, ["bg_predictor", "avd_network"]).bg_predictor is not None
    measured = TPSMMNetworks.for_networks(tiny_config.replace(bg=True, bg_motion="lk"), [])
    assert measured.bg_predictor is not None and measured.config.bg is True


class _Collect:
    def __init__(self):
        self.batches = []

    def write(self, frames):
        self.batches.append(frames)


def test_write_rendered_sends_each_track_to_its_writers():
    model = make_tiny_model()
    g = torch.Generator().manual_seed(3)
    source, driving = torch.rand(64, 64, 3, generator=g), torch.rand(5, 64, 64, 3, generator=g)
    options = AnimationOptions(mode="standard", batch_size=2, with_motion=True, extra_views=("side-by-side",))
    rendered = list(AnimationPipeline(model, options).run(source, driving))
    main, panels, flow = _Collect(), _Collect(), _Collect()
    seen = []
    written = write_rendered(iter(rendered), [("frames", main), ("side-by-side", panels), ("flow", flow)],
                             motion_size=32, each=seen.append)
    assert (written.frames, written.size, len(seen)) == (5, Size(64, 64), 3)
    assert torch.equal(torch.cat(main.batches), torch.cat([r.frames for r in rendered]))
    assert torch.equal(torch.cat(panels.batches), torch.cat([r.views["side-by-side"] for r in rendered]))
    expected = flow_to_rgb(rendered[0].deformation, size=32, max_magnitude=FLOW_SCALE)
    assert torch.equal(flow.batches[0], expected) and flow.batches[0].shape[1:3] == (32, 32)
    with pytest.raises(FieldError, match="writers: 'thumbnail' is not one of"):
        write_rendered(iter(rendered), [("thumbnail", main)])
