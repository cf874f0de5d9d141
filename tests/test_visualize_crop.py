"""Tests for tpsmm.core.media.visualize and tpsmm.core.media.crop (pure tensor code, fast)."""
from __future__ import annotations

import pytest
import torch

from tpsmm.core.geometry.coords import make_coordinate_grid
from tpsmm.core.media.crop import CropBox, crop, feather_mask, paste_back, resize_images
from tpsmm.core.media.visualize import draw_keypoints, flow_to_rgb, group_colours, occlusion_to_rgb, side_by_side


# ---------------------------------------------------------------- draw_keypoints
def test_draw_keypoints_places_group_colours_and_keeps_input():
    images = torch.zeros(2, 33, 65, 3)
    kp = torch.tensor([[[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0], [0.5, -0.5], [0.0, 0.5], [-0.5, 0.5]]])  # 2 groups of 3
    out = draw_keypoints(images, kp, radius=2, group_size=3, outline=False)
    assert out.shape == images.shape and images.abs().sum() == 0          # input untouched
    colours = group_colours(2)
    assert torch.allclose(out[0, 16, 32], colours[0])                     # (0,0) -> centre pixel (16, 32)
    assert torch.allclose(out[1, 0, 0], colours[0]) and torch.allclose(out[1, 32, 64], colours[0])
    row, col = round(0.25 * 32), round(0.75 * 64)                         # (0.5, -0.5): x -> col, y -> row
    assert torch.allclose(out[0, row, col], colours[1])
    assert not torch.allclose(colours[0], colours[1])
    assert out[0, 16, 40].abs().sum() == 0                                # far from every keypoint: unchanged


def test_draw_keypoints_outline_and_errors():
    images = torch.ones(1, 32, 32, 3)
    out = draw_keypoints(images, torch.zeros(1, 5, 2), radius=2)
    centre = out[0, 15:17, 15:17].reshape(-1, 3)
    assert (centre == group_colours(1)[0]).all(dim=-1).any()
    assert (out[0].reshape(-1, 3).sum(-1) == 0).any()                     # black ring present
    with pytest.raises(ValueError, match="kp"):
        draw_keypoints(images, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="batch 3"):
        draw_keypoints(torch.zeros(2, 8, 8, 3), torch.zeros(3, 5, 2))
    with pytest.raises(ValueError, match="images"):
        draw_keypoints(torch.zeros(1, 8, 8, 4), torch.zeros(1, 5, 2))
    # off-image keypoints are skipped, not wrapped around
    far = draw_keypoints(torch.zeros(1, 8, 8, 3), torch.full((1, 1, 2), 5.0), radius=1, group_size=1)
    assert far.abs().sum() == 0


# ---------------------------------------------------------------- flow / occlusion / panels
def test_flow_to_rgb_identity_is_white_and_direction_changes_colour():
    ident = make_coordinate_grid(16, 16)[None]
    white = flow_to_rgb(ident.expand(2, -1, -1, -1).clone(), size=(32, 24))
    assert white.shape == (2, 32, 24, 3) and torch.allclose(white, torch.ones_like(white), atol=1e-6)
    right = ident.clone()
    right[..., 0] += 0.1
    down = ident.clone()
    down[..., 1] += 0.1
    a = flow_to_rgb(torch.cat([right, down]), max_magnitude=0.25)
    assert (a[0, 5, 5] - a[1, 5, 5]).abs().max() > 0.2                     # different hue
    assert (a[0] == a[0, 5, 5]).all()                                      # uniform flow, uniform colour
    # fixed scale: the same motion gives the same colour whatever else is in the batch
    b = flow_to_rgb(torch.cat([right, ident + 0.2]), max_magnitude=0.25)
    assert torch.allclose(a[0], b[0])
    with pytest.raises(ValueError, match="deformation"):
        flow_to_rgb(torch.zeros(1, 8, 8, 3))


def test_occlusion_to_rgb_and_side_by_side():
    occ = torch.rand(3, 1, 8, 8)
    rgb = occlusion_to_rgb(occ, size=16)
    assert rgb.shape == (3, 16, 16, 3) and torch.equal(rgb[..., 0], rgb[..., 2])
    assert torch.allclose(occlusion_to_rgb(occ[:, 0])[..., 1], occ[:, 0])
    a, b, c = torch.rand(1, 20, 10, 3), torch.rand(3, 40, 40, 3), torch.rand(3, 20, 30, 3)
    out = side_by_side(a, b, c)
    assert out.shape == (3, 20, 10 + 20 + 30, 3)
    assert torch.equal(out[2, :, :10], a[0]) and torch.equal(out[1, :, 30:], c[1])
    with pytest.raises(ValueError, match="batches"):
        side_by_side(torch.rand(2, 8, 8, 3), torch.rand(3, 8, 8, 3))


# ---------------------------------------------------------------- crop
def test_crop_box_parse_and_check():
    box = CropBox.parse(" 600, 120,512,256")
    assert box == CropBox(x=600, y=120, w=512, h=256) and str(box) == "600,120,512,256"
    for bad in ("1,2,3", "a,b,c,d", "1,2,0,4", "-1,0,4,4", ""):
        with pytest.raises(ValueError, match="^crop: "):
            CropBox.parse(bad)
    box.check(1112, 376)
    with pytest.raises(ValueError, match="crop box 600,120,512,256 lies outside the 1111x376 image"):
        box.check(1111, 376)
    images = torch.arange(2 * 10 * 12 * 3, dtype=torch.float32).reshape(2, 10, 12, 3)
    part = crop(images, CropBox(x=2, y=3, w=4, h=5))
    assert part.shape == (2, 5, 4, 3) and torch.equal(part, images[:, 3:8, 2:6])


def test_feather_mask():
    m = feather_mask(20, 30, 4)
    assert m.shape == (20, 30) and m.min() > 0 and m.max() == 1
    assert m[10, 15] == 1 and m[0, 15] == pytest.approx(0.125) and m[3, 15] == pytest.approx(0.875)
    assert torch.equal(m, m.flip(0)) and torch.equal(m, m.flip(1))
    assert torch.equal(feather_mask(5, 6, 0), torch.ones(5, 6))
    with pytest.raises(ValueError):
        feather_mask(5, 5, -1)


def test_paste_back_blends_only_inside_the_box():
    full = torch.rand(40, 50, 3)
    box = CropBox(x=10, y=5, w=20, h=16)
    patches = torch.rand(3, 32, 32, 3)
    out = paste_back(full, patches, box, feather=4)
    assert out.shape == (3, 40, 50, 3)
    outside = torch.ones(40, 50, dtype=torch.bool)
    outside[5:21, 10:30] = False
    assert torch.equal(out[:, outside], full[outside].expand(3, -1, -1))
    region = resize_images(patches, (16, 20))
    assert torch.allclose(out[:, 13, 20], region[:, 8, 10])              # centre = the animated patch
    edge = out[:, 5, 20]                                                  # border row: mostly the still photo
    assert ((edge - full[5, 20]).abs() <= (region[:, 0, 10] - full[5, 20]).abs() * 0.2 + 1e-6).all()
    hard = paste_back(full[None], region, box, feather=0)
    assert torch.equal(hard[:, 5:21, 10:30], region)
    with pytest.raises(ValueError, match="does not overlap the 50x40 image"):
        paste_back(full, patches, CropBox(x=50, y=0, w=20, h=10))
