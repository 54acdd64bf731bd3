"""FCN-32s/16s/8s and U-Net: shapes on odd sizes, every variant, the VGG16 equivalence, bad input."""

import itertools

import pytest
import torch
import torchvision
from torch import nn

from seglab.models import (
    FCN,
    UNet,
    VGGConfig,
    build_model,
    convolutionalize,
    trainable_models,
    unet_input_size,
    unet_output_size,
)

TINY_VGG = VGGConfig(widths=(4, 4, 8, 8, 8), convs_per_stage=(1, 1, 1, 1, 1), fc_channels=8, fc6_kernel=3,
                     batch_norm=True, dropout=0.0)
ODD_SIZES = [(32, 32), (33, 47), (64, 65), (97, 50)]


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
@pytest.mark.parametrize("size", ODD_SIZES)
def test_fcn_logits_have_input_size(variant, size):
    model = FCN(5, variant, in_channels=2, backbone=TINY_VGG)
    assert model(torch.randn(2, 2, *size)).shape == (2, 5, *size)


def test_fcn_default_backbone_is_narrow_and_vgg16_widths_exist():
    narrow, vgg = FCN(3), FCN(3, backbone="vgg16")
    assert narrow.backbone.stage5[0].out_channels == 128
    assert vgg.backbone.stage5[0].out_channels == 512
    assert vgg.classifier[0].kernel_size == (7, 7) and vgg.classifier[0].out_channels == 4096
    assert narrow(torch.randn(1, 3, 45, 45)).shape == (1, 3, 45, 45)


def test_fcn_variants_fuse_the_right_pools():
    assert not hasattr(FCN(3, "32s"), "score_pool4")
    fcn16 = FCN(3, "16s")
    assert hasattr(fcn16, "score_pool4") and not hasattr(fcn16, "score_pool3")
    fcn8 = FCN(3, "8s")
    assert fcn8.upsample.scale_factor == 8 and not fcn8.upsample.conv.weight.requires_grad
    assert fcn8.up_pool5.conv.weight.requires_grad  # the 2x upsamplings learn, the last stays bilinear
    assert fcn8.score_pool3.weight.abs().sum() == 0  # zero-initialised, as in the paper


@pytest.mark.parametrize("variant, stride", [("32s", 32), ("16s", 16), ("8s", 8)])
def test_fcn_output_is_its_stride_s_scores_upsampled_bilinearly(variant, stride):
    """What sets the output resolution: the logits are a bilinear upsampling of stride-s scores."""
    torch.manual_seed(0)
    model = FCN(4, variant, backbone=TINY_VGG).eval()
    x = torch.randn(1, 3, 96, 80)
    with torch.no_grad():
        coarse = model.coarse_scores(x)
        logits = model(x)
    assert coarse.shape[-2:] == (-(-96 // stride), -(-80 // stride))
    upsampled = torch.nn.functional.interpolate(coarse, scale_factor=stride, mode="bilinear")[..., :96, :80]
    inner = (..., slice(stride // 2, 96 - stride), slice(stride // 2, 80 - stride))
    torch.testing.assert_close(logits[inner], upsampled[inner])


@pytest.mark.parametrize("up, merge", list(itertools.product(["transposed", "bilinear"], ["skip", "shortcut", "none"])))
@pytest.mark.parametrize("size", ODD_SIZES[:3])
def test_unet_same_padding_any_size(up, merge, size):
    model = UNet(2, 3, depth=3, base_channels=4, up=up, merge=merge)
    out = model(torch.randn(2, 2, *size))
    assert out.shape == (2, 3, *size)


@pytest.mark.parametrize("up, merge", list(itertools.product(["transposed", "bilinear"], ["skip", "shortcut", "none"])))
def test_unet_valid_padding_matches_the_paper(up, merge):
    model = UNet(1, 2, depth=4, base_channels=2, up=up, merge=merge, padding="valid")
    assert model.output_size(572) == 388
    assert model(torch.randn(1, 1, 572, 572)).shape == (1, 2, 388, 388)


@pytest.mark.parametrize("size", [188, 189, 201, 250, 253])
def test_unet_valid_output_size_helper_matches_the_model(size):
    model = UNet(1, 2, depth=4, base_channels=2, padding="valid")
    assert model(torch.randn(1, 1, size, size)).shape[-1] == unet_output_size(size) == model.output_size(size)


def test_unet_input_size_inverts_output_size():
    for depth in (2, 3, 4):
        for wanted in range(1, 120, 7):
            size = unet_input_size(wanted, depth)
            assert unet_output_size(size, depth) >= wanted
            assert unet_output_size(size - 2 ** depth, depth) < wanted  # and it is the smallest such tile
            # every pooling sees an even size: the paper's tile rule
            s = size
            for _ in range(depth):
                assert (s - 4) % 2 == 0
                s = (s - 4) // 2
    assert unet_input_size(388) == 572


def test_unet_valid_minimum_is_exact():
    model = UNet(1, 2, depth=4, base_channels=2, padding="valid")
    minimum = model.min_input_size()
    assert model(torch.randn(1, 1, minimum, minimum)).shape[-1] >= 1
    with pytest.raises(ValueError, match=f"at least {minimum}"):
        model(torch.randn(1, 1, minimum - 1, minimum - 1))


def test_skip_unet_has_wider_decoder_convs_than_shortcut():
    skip, shortcut = UNet(1, 2, depth=2, base_channels=4), UNet(1, 2, depth=2, base_channels=4, merge="shortcut")
    assert skip.decoder[-1].conv[0].in_channels == 8  # concatenation: C + C
    assert shortcut.decoder[-1].conv[0].in_channels == 4  # summation: C


@pytest.mark.parametrize("name", trainable_models())
def test_every_parameter_gets_a_gradient(name):
    model = build_model(name, num_classes=3, **({"base_channels": 4, "depth": 2} if name == "unet" else {}))
    model(torch.randn(2, 3, 40, 36)).logsumexp(1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_build_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown model 'segnet'.*fcn8s"):
        build_model("segnet", num_classes=2)


@pytest.mark.parametrize("model", [FCN(3, backbone=TINY_VGG), UNet(3, 3, depth=2, base_channels=4)],
                         ids=["fcn", "unet"])
class TestBadInput:
    def test_wrong_channels(self, model):
        with pytest.raises(ValueError, match="built for 3 input channels, got 1.*in_channels=1"):
            model(torch.randn(2, 1, 64, 64))

    def test_not_4d(self, model):
        with pytest.raises(ValueError, match=r"4-D batch.*\(3, 64, 64\).*unsqueeze"):
            model(torch.randn(3, 64, 64))

    def test_too_small(self, model):
        minimum = model.min_input_size()
        with pytest.raises(ValueError, match=f"at least {minimum}x{minimum}.*got {minimum - 1}"):
            model(torch.randn(1, 3, minimum - 1, 64))

    def test_integer_images(self, model):
        with pytest.raises(ValueError, match="floating-point.*float"):
            model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="variant"):
        FCN(3, "4s")
    with pytest.raises(ValueError, match="backbone"):
        FCN(3, backbone="resnet")
    with pytest.raises(ValueError, match="merge"):
        UNet(3, 2, merge="concat")
    with pytest.raises(ValueError, match="up"):
        UNet(3, 2, up="nearest")


# ------------------------------------------------------------------ VGG16 -> FCN


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return torchvision.models.vgg16().eval()  # random weights: nothing is downloaded


def test_convolutionalize_equals_the_classifier_on_224(vgg):
    x = torch.randn(1, 3, 224, 224)
    head = convolutionalize(vgg.classifier).eval()
    assert [type(m) for m in head if not isinstance(m, (nn.ReLU, nn.Dropout))] == [nn.Conv2d] * 3
    with torch.no_grad():
        features = vgg.features(x)  # (1, 512, 7, 7)
        scores = head(features)  # (1, 1000, 1, 1): a single output position
        logits = vgg(x)
    assert scores.shape == (1, 1000, 1, 1)
    torch.testing.assert_close(scores[:, :, 0, 0], logits, rtol=1e-4, atol=1e-5)


def test_convolutionalized_classifier_slides_over_a_larger_image(vgg):
    x = torch.randn(1, 3, 320, 288)
    head = convolutionalize(vgg.classifier).eval()
    with torch.no_grad():
        features = vgg.features(x)  # (1, 512, 10, 9)
        scores = head(features)  # (1, 1000, 4, 3)
        window = vgg.classifier(features[:, :, 2:9, 1:8].flatten(1))  # the classifier at one position
    assert scores.shape == (1, 1000, 4, 3)
    torch.testing.assert_close(scores[:, :, 2, 1], window, rtol=1e-4, atol=1e-5)


def test_fcn_from_vgg16_scores_equal_the_logits(vgg, tmp_path):
    x = torch.randn(1, 3, 224, 224)
    path = tmp_path / "vgg16.pt"
    torch.save(vgg.state_dict(), path)
    for source in (vgg, path):
        fcn = FCN.from_vgg16(source, num_classes=1000, variant="32s").eval()
        with torch.no_grad():
            coarse = fcn.coarse_scores(x)  # (1, 1000, 7, 7): fc6 is padded to keep the size
            logits = vgg(x)
        # the centre position sees exactly the 7x7 pool5 window the classifier sees
        torch.testing.assert_close(coarse[:, :, 3, 3], logits, rtol=1e-4, atol=1e-5)
    assert fcn(x).shape == (1, 1000, 224, 224)


def test_fcn_from_vgg16_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no VGG16 weights.*torch.save"):
        FCN.from_vgg16(tmp_path / "missing.pt", num_classes=2)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch state dict"):
        FCN.from_vgg16(corrupt, num_classes=2)
    with pytest.raises(ValueError, match="vgg16_bn"):
        FCN.from_vgg16(torchvision.models.vgg11().state_dict(), num_classes=2)


def test_convolutionalize_errors():
    with pytest.raises(ValueError, match="no Linear"):
        convolutionalize(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="feature_size"):
        convolutionalize(nn.Sequential(nn.Linear(50, 3)), feature_size=7)
