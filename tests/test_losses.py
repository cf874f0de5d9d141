"""Losses and schedules of the released recipe: VGG perceptual (local weights only), L1+SSIM fallback,
equivariance, warp, background; TPS dropout schedule and bg_start."""
from __future__ import annotations

import pytest
import torch

from tpsmm.core.model.config import ModelConfig, TrainConfig, get_preset
from tpsmm.core.geometry.tps import RandomTPS
from tpsmm.trainer.batch_losses import background_active, dropout_probability
from tpsmm.trainer.losses import (ImagePyramid, L1SSIMLoss, LossSetupError, PerceptualLoss, VGG19Features,
                                  background_loss, build_reconstruction_loss, equivariance_loss, find_vgg_weights,
                                  warp_loss)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A torchvision-layout VGG-19 state dict with random weights (the real file is not downloaded in tests)."""
    torch.manual_seed(0)
    features = VGG19Features().features.state_dict()
    sd = {f"features.{k}": v for k, v in features.items()}
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # extra entries of the real file are ignored
    path = tmp_path_factory.mktemp("hub") / "checkpoints" / "vgg19-dcbb9e9d.pth"
    path.parent.mkdir()
    torch.save(sd, path)
    return path


def test_dropout_schedule_as_released():
    vox, taichi = get_preset("vox-256").train, get_preset("taichi-256").train
    assert [round(dropout_probability(e, vox), 4) for e in range(9)] == [0.1, 0.13, 0.16, 0.19, 0.22, 0.25, 0.28,
                                                                         0.3, 0.3]
    assert dropout_probability(34, vox) == 0.3 and dropout_probability(35, vox) is None
    assert dropout_probability(0, taichi) == 0.0 and dropout_probability(10, taichi) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="epoch"):
        dropout_probability(-1, vox)


def test_background_starts_at_bg_start():
    train = TrainConfig(bg_start=10)
    assert not background_active(9, ModelConfig(), train) and background_active(10, ModelConfig(), train)
    assert not background_active(50, ModelConfig(bg=False), train)


def test_pyramid_scales():
    x = torch.rand(2, 3, 64, 64)
    levels = ImagePyramid(scales=(1, 0.5, 0.25, 0.125))(x)
    assert [t.shape[-1] for t in levels] == [64, 32, 16, 8] and torch.equal(levels[0], x)


def test_l1_ssim_fallback():
    loss = L1SSIMLoss(weight=10.0)
    pyramid = ImagePyramid(scales=(1, 0.5, 0.25, 0.125))
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    assert loss(pyramid(a), pyramid(a)).item() == pytest.approx(0.0, abs=1e-5)
    p = a.clone().requires_grad_(True)
    value = loss(pyramid(p), pyramid(b))
    value.backward()
    assert value.item() > 1 and p.grad.abs().sum() > 0


def test_perceptual_loss_from_local_weights(vgg_file):
    vgg = VGG19Features.from_file(str(vgg_file))
    assert not any(p.requires_grad for p in vgg.parameters()) and not vgg.train().training
    feats = vgg(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512] and [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    loss = PerceptualLoss(vgg=vgg, weights=(10,) * 5)
    pyramid = ImagePyramid(scales=(1, 0.5))
    a = torch.rand(2, 3, 32, 32)
    assert loss(pyramid(a), pyramid(a)).item() == 0.0
    p = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(pyramid(p), pyramid(a))
    value.backward()
    assert value.item() > 0 and p.grad.abs().sum() > 0


def test_vgg_weights_lookup_and_refusal(vgg_file, tmp_path, monkeypatch):
    hub = vgg_file.parent.parent
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    assert find_vgg_weights() == str(vgg_file)
    assert isinstance(build_reconstruction_loss(TrainConfig(), "vgg"), PerceptualLoss)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty"))
    assert find_vgg_weights() is None
    with pytest.raises(LossSetupError, match=r"--vgg-weights FILE.*--recon-loss l1-ssim"):
        build_reconstruction_loss(TrainConfig(), "vgg")
    assert isinstance(build_reconstruction_loss(TrainConfig(), "vgg", str(vgg_file)), PerceptualLoss)
    assert isinstance(build_reconstruction_loss(TrainConfig(), "l1-ssim"), L1SSIMLoss)
    assert build_reconstruction_loss(TrainConfig(loss_perceptual=(0,) * 5), "vgg") is None
    with pytest.raises(LossSetupError, match="no such file"):
        find_vgg_weights(str(tmp_path / "missing.pth"))


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_vgg_weights_read_safely(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "x": Payload()}, f, pickle_protocol=2)
    with pytest.raises(LossSetupError, match="refused to load"):
        VGG19Features.from_file(str(evil))
    wrong = tmp_path / "resnet.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, wrong)
    with pytest.raises(LossSetupError, match=r"not VGG-19 weights \(features.0.weight"):
        VGG19Features.from_file(str(wrong))


def test_equivariance_loss():
    pts = torch.rand(1, 50, 2) * 1.6 - 0.8

    class Fixed(torch.nn.Module):  # keypoints that ignore the image: not equivariant
        def forward(self, image):
            return pts.expand(image.shape[0], -1, -1)

    driving = torch.rand(2, 3, 32, 32)
    identity = RandomTPS(batch=2, sigma_affine=0.0, sigma_tps=0.0, points=5)
    kp = pts.expand(2, -1, -1).clone().requires_grad_(True)
    assert equivariance_loss(Fixed(), driving, kp, identity, weight=10).item() == pytest.approx(0, abs=1e-6)
    moved = RandomTPS(batch=2, sigma_affine=0.05, sigma_tps=0.005, points=5, generator=torch.Generator().manual_seed(0))
    value = equivariance_loss(Fixed(), driving, kp, moved, weight=10)
    expected = 10 * (kp - moved.warp_points(pts.expand(2, -1, -1))).abs().mean()
    assert value.item() == pytest.approx(expected.item()) and value.item() > 0.05
    value.backward()
    assert kp.grad.abs().sum() > 0


def test_warp_loss_pairs_levels():
    enc = [torch.rand(1, c, s, s) for c, s in ((8, 32), (16, 16), (32, 8), (32, 4))]  # finest first
    warped = [t.clone() for t in reversed(enc)]  # deepest first
    assert warp_loss(enc, warped, weight=10).item() == 0.0
    warped[0] = warped[0] + 1  # deepest level off by one everywhere
    assert warp_loss(enc, warped, weight=10).item() == pytest.approx(10.0)
    with pytest.raises(ValueError, match="warp_loss"):
        warp_loss(enc, warped[:3], weight=1)


def test_background_loss():
    a = torch.tensor([[1.1, 0.1, 0.05], [-0.1, 0.9, 0.02], [0, 0, 1]]).expand(2, 3, 3)
    assert background_loss(a, torch.linalg.inv(a), weight=10).item() == pytest.approx(0, abs=1e-6)
    value = background_loss(a, a, weight=10)
    assert value.item() == pytest.approx(10 * (torch.eye(3) - a[0] @ a[0]).abs().mean().item())


def test_unknown_recon_loss():
    with pytest.raises(LossSetupError, match="--recon-loss"):
        build_reconstruction_loss(TrainConfig(), "mse")
