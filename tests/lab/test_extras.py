"""The further-reading models: dilated FCN, HRNet-style network, multi-scale attention."""

import pytest
import torch
from torch import nn

from seglab.arithmetic import receptive_field
from seglab.models import (
    FCN,
    DilatedFCN,
    HRNetLite,
    MultiScaleAttention,
    MultiScaleAverage,
    UNet,
)

SIZES = [(48, 48), (45, 61), (33, 70)]


def tiny_unet():
    return UNet(1, 3, depth=2, base_channels=4)


@pytest.mark.parametrize("make", [lambda: DilatedFCN(3, 1), lambda: HRNetLite(1, 3, width=4),
                                  lambda: MultiScaleAttention(tiny_unet()), lambda: MultiScaleAverage(tiny_unet())],
                         ids=["dilated_fcn", "hrnet", "attention", "average"])
@pytest.mark.parametrize("size", SIZES)
def test_logits_have_input_size_and_train(make, size):
    model = make()
    out = model(torch.randn(2, 1, *size))
    assert out.shape == (2, 3, *size)
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_dilated_fcn_keeps_output_stride_8_with_a_wide_view():
    model = DilatedFCN(3, 1).eval()
    features = model.backbone(torch.zeros(1, 1, 64, 64))
    assert features.shape[-1] == 64 // 8  # no pooling after pool3
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())  # no learned upsampling
    assert any(m.dilation == (2, 2) for m in model.modules() if isinstance(m, nn.Conv2d))
    dilated, fcn8s_pool3 = receptive_field(model), receptive_field(FCN(3, "8s", 1).backbone[:3])
    assert dilated.jump == fcn8s_pool3.jump == 8 and dilated.size > 5 * fcn8s_pool3.size


def test_hrnet_keeps_a_full_resolution_branch():
    model = HRNetLite(1, 3, width=4, branches=3)
    seen = []
    for exchange in model.exchanges:
        exchange.register_forward_hook(lambda _m, _i, out: seen.append([tuple(b.shape[-2:]) for b in out]))
    model(torch.zeros(1, 1, 40, 40))
    assert [len(branches) for branches in seen] == [2, 3, 3]
    assert all(branches[0] == (40, 40) for branches in seen)  # full resolution after every stage
    assert seen[-1][1:] == [(20, 20), (10, 10)]


def test_multiscale_attention_weights_and_average_baseline():
    torch.manual_seed(0)
    base = tiny_unet().eval()
    x = torch.randn(2, 1, 40, 40)
    average = MultiScaleAverage(base).eval()
    low = nn.functional.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    expected = (base(x) + nn.functional.interpolate(base(low), size=(40, 40), mode="bilinear")) / 2
    torch.testing.assert_close(average(x), expected)
    attention = MultiScaleAttention(base).eval()
    with torch.no_grad():
        weight = attention.attention(x)
    assert weight.shape == (2, 1, 40, 40) and 0 <= float(weight.min()) and float(weight.max()) <= 1
    with pytest.raises(ValueError, match="at least"):
        attention(torch.randn(1, 1, 8, 8))
