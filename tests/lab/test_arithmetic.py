"""seglab.arithmetic against the shapes that real PyTorch layers produce."""

import math
import random

import pytest
import torch
from torch import nn

from seglab.arithmetic import (
    LayerGeometry,
    ReceptiveField,
    conv_output_size,
    pool_output_size,
    receptive_field,
    receptive_fields,
    transposed_conv_output_size,
)
from seglab.checks.arithmetic import random_stack
from seglab.models import FCN, UNet

CASES = 300


def _torch_size(layer: nn.Module, i: int) -> int | None:
    """The layer's output size on a 1-channel i x i input, or None when PyTorch rejects it."""
    try:
        with torch.no_grad():
            return layer(torch.zeros(1, 1, i, i)).shape[-1]
    except RuntimeError:
        return None


def test_conv_output_size_matches_conv2d():
    rng = random.Random(0)
    checked = 0
    for _ in range(CASES):
        i, k, s, p, d = rng.randint(1, 40), rng.randint(1, 7), rng.randint(1, 4), rng.randint(0, 4), rng.randint(1, 3)
        expected = _torch_size(nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d), i)
        if expected is None:
            with pytest.raises(ValueError, match="kernel spans"):
                conv_output_size(i, k, s, p, d)
        else:
            assert conv_output_size(i, k, s, p, d) == expected, (i, k, s, p, d)
            checked += 1
    assert checked > CASES // 2  # most cases are valid ones


def test_transposed_conv_output_size_matches_conv_transpose2d():
    rng = random.Random(1)
    for _ in range(CASES):
        i, k, s, p, d = rng.randint(1, 20), rng.randint(1, 7), rng.randint(1, 4), rng.randint(0, 3), rng.randint(1, 3)
        output_padding = rng.randint(0, max(s, d) - 1)
        layer = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, dilation=d, output_padding=output_padding)
        expected = _torch_size(layer, i)
        if expected is None or expected < 1:
            with pytest.raises(ValueError):
                transposed_conv_output_size(i, k, s, p, d, output_padding)
        else:
            assert transposed_conv_output_size(i, k, s, p, d, output_padding) == expected, (i, k, s, p, d)


def test_transposed_conv_inverts_conv_shape():
    rng = random.Random(2)
    for _ in range(CASES):
        i, k, s, p = rng.randint(4, 40), rng.randint(1, 5), rng.randint(1, 4), rng.randint(0, 2)
        o = conv_output_size(i, k, s, p)
        back = transposed_conv_output_size(o, k, s, p)
        assert back <= i < back + s  # output_padding = i - back brings it back exactly
        assert transposed_conv_output_size(o, k, s, p, output_padding=i - back) == i


@pytest.mark.parametrize("pool_type", [nn.MaxPool2d, nn.AvgPool2d])
def test_pool_output_size_matches_pooling(pool_type):
    rng = random.Random(3)
    for _ in range(CASES):
        i, k = rng.randint(1, 40), rng.randint(1, 5)
        s, p, ceil_mode = rng.randint(1, 4), rng.randint(0, k // 2), rng.random() < 0.5
        d = rng.randint(1, 2) if pool_type is nn.MaxPool2d else 1
        kwargs = {"dilation": d} if pool_type is nn.MaxPool2d else {}
        expected = _torch_size(pool_type(k, s, p, ceil_mode=ceil_mode, **kwargs), i)
        if expected is None:
            with pytest.raises(ValueError):
                pool_output_size(i, k, s, p, ceil_mode=ceil_mode, d=d)
        else:
            assert pool_output_size(i, k, s, p, ceil_mode=ceil_mode, d=d) == expected, (i, k, s, p, d, ceil_mode)


def test_pool_stride_defaults_to_kernel():
    assert pool_output_size(9, 3) == nn.MaxPool2d(3)(torch.zeros(1, 1, 9, 9)).shape[-1] == 3


@pytest.mark.parametrize("call, message", [
    (lambda: conv_output_size(0, 3), "input size"),
    (lambda: conv_output_size(5, 3, s=0), "stride"),
    (lambda: conv_output_size(5, 3, p=-1), "padding"),
    (lambda: conv_output_size(2, 5), "kernel spans 5"),
    (lambda: transposed_conv_output_size(4, 3, s=2, output_padding=2), "output_padding"),
    (lambda: pool_output_size(8, 2, p=2), "at most half"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _gradient_footprint(model: nn.Module, size: int, n: int) -> tuple[int, int]:
    """First and last input column that influence output pixel (0, n), from the gradient."""
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    model(x)[0, 0, 0, n].backward()
    touched = (x.grad[0, 0].abs().sum(0) > 0).nonzero().flatten()
    return int(touched[0]), int(touched[-1])


def _positive_stack(spec):
    """Conv/avg-pool stack with positive weights, so no gradient cancels out."""
    layers = []
    for kind, k, s, p, d in spec:
        if kind == "conv":
            conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
            nn.init.constant_(conv.weight, 1.0)
            layers.append(conv)
        else:
            layers.append(nn.AvgPool2d(k, s, p))
    return nn.Sequential(*layers)


def test_receptive_field_matches_gradient_footprint():
    rng = random.Random(4)
    for _ in range(40):
        spec = random_stack(rng, max_layers=5)
        model = _positive_stack(spec)
        field = receptive_field(model)
        # an output pixel whose whole field lies inside the input (none of it in the padding)
        n = max(0, math.ceil(((field.size - 1) / 2 - field.start) / field.jump)) + 1
        centre = field.start + n * field.jump
        size = int(centre + field.size + 2 * field.jump + 8)
        first, last = _gradient_footprint(model, size, n)
        assert (first, last) == (centre - (field.size - 1) / 2, centre + (field.size - 1) / 2), (spec, field, n)


def test_receptive_field_accepts_tuples_sequential_and_models():
    vgg_block = [(3, 1, 1), (3, 1, 1), (2, 2)]
    assert receptive_field(vgg_block) == ReceptiveField(size=6, jump=2, start=0.5)
    seq = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2))
    assert receptive_field(seq) == receptive_field(vgg_block)
    assert len(receptive_fields(seq)) == 3  # ReLU does not count
    assert receptive_field([LayerGeometry(3, dilation=2)]).size == 5
    assert receptive_field(FCN(3, "8s")).jump == 32
    assert receptive_field(UNet(1, 2, depth=4)).jump == 16


def test_receptive_field_of_vgg16_features():
    # the classic numbers: VGG16's pool5 has stride 32 and a 212-pixel receptive field
    import torchvision

    field = receptive_field(torchvision.models.vgg16().features)
    assert (field.size, field.jump) == (212, 32)


def test_transposed_layers_divide_the_jump():
    field = receptive_field([(2, 2), LayerGeometry(4, 2, 1, transposed=True)])
    assert field.jump == 1
    assert field.size == 2 + 1 * 2  # each output pixel mixes 2 input cells of the coarse map


def test_input_size_dependent_layers_are_refused():
    with pytest.raises(ValueError, match="convolutionalise"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1)))


def test_pool_output_size_takes_notebook_01s_argument_order():
    """``pool_output_size(i, k, s, p, ceil_mode)`` as in the exercise; a dilation only by name."""
    assert pool_output_size(5, 2, 2, 0, True) == 3 == nn.MaxPool2d(2, ceil_mode=True)(torch.zeros(1, 1, 5, 5)).shape[-1]
    with pytest.raises(TypeError):
        pool_output_size(5, 2, 2, 0, False, 2)
