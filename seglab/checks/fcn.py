"""Checks for notebook 03, fully convolutional networks. Oracles: the original ``nn.Linear`` layer,
the shapes PyTorch actually produces, and seglab's FCN run with the same weights."""

from __future__ import annotations

import random

import torch
from torch import nn

from seglab.checks import Checker, require, run_check
from seglab.models import FCN, VGGConfig

__all__ = ["check_fcn8s_fusion", "check_linear_to_conv", "check_total_stride"]

POINTS = {"linear_to_conv": 3, "total_stride": 2, "fcn8s_fusion": 3}


def check_linear_to_conv(fn, cases: int = 10, seed: int | None = None):
    """``fn(linear, channels, size)`` -> an ``nn.Conv2d`` whose output on a ``(B, channels, size, size)``
    map equals the Linear layer applied to the flattened map."""

    def body(c: Checker, rng: random.Random):
        require(callable(fn), "pass your function linear_to_conv itself")
        for n in range(cases):
            channels, size, out = rng.randint(1, 6), rng.choice([1, 1, 2, 3, 7]) if n else 1, rng.randint(1, 8)
            linear = nn.Linear(channels * size * size, out)
            case = f"Linear({channels}·{size}·{size} → {out}), feature map {channels}x{size}x{size}"
            conv = fn(linear, channels, size)
            require(isinstance(conv, nn.Conv2d), f"return an nn.Conv2d, got {type(conv).__name__} for {case}")
            x = torch.randn(2, channels, size, size)
            with torch.no_grad():
                expected = linear(x.flatten(1))
                try:
                    got = conv(x)
                except RuntimeError as error:
                    c.fail(case, f"the convolution cannot read the feature map ({str(error)[:80]}): it needs "
                                 f"in_channels={channels} and kernel_size={size}")
                    continue
            if got.shape != (2, out, 1, 1):
                c.fail(case, f"on the {size}x{size} map the convolution should give one position: output "
                             f"(2, {out}, 1, 1), got {tuple(got.shape)}. Use kernel_size = {size}, no padding.")
            elif torch.allclose(got.flatten(1), expected, atol=1e-5):
                c.ok()
            elif conv.bias is None or not torch.allclose(conv.bias, linear.bias):
                c.fail(case, "copy the bias too")
            else:
                c.fail(case, "reshape the weight (out, C·k·k) to (out, C, k, k): flatten() orders a map channel "
                             "by channel, then row by row, which is exactly this layout.")

    return run_check("linear_to_conv", POINTS["linear_to_conv"], "Linear → Conv2d", body, seed)


def _random_stack(rng: random.Random) -> nn.Sequential:
    """A small random stack of convolutions, poolings and BatchNorm: at most four factors of 2 and two
    of 3 in its strides, so a 1440-pixel input is divided exactly."""
    layers: list[nn.Module] = []
    channels, twos, threes = 1, 0, 0
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        if kind < 0.4:
            k, stride = rng.choice([1, 3, 5]), 2 if rng.random() < 0.3 and twos < 4 else 1
            twos += stride == 2
            layers += [nn.Conv2d(channels, 2, k, stride=stride, padding=k // 2), nn.ReLU()]
            channels = 2
        elif kind < 0.8 and twos < 4:
            twos += 1
            layers.append(rng.choice([nn.MaxPool2d(2), nn.AvgPool2d(2, stride=(2, 2))]))
        elif kind < 0.8 and threes < 2:
            threes += 1
            layers.append(nn.MaxPool2d(3, stride=3))
        else:
            layers.append(nn.BatchNorm2d(channels))
    return nn.Sequential(*layers)


def check_total_stride(fn, cases: int = 12, seed: int | None = None):
    """``fn(module)`` -> the product of the strides of its convolutions and poolings, compared with
    the ratio of input to output size that PyTorch produces."""

    def body(c: Checker, rng: random.Random):
        require(callable(fn), "pass your function total_stride itself")
        tiny = VGGConfig((4, 4, 4, 4, 4), (1, 1, 1, 1, 1), 4, 3, True, 0.0)
        modules = [FCN(2, "32s", 1, backbone=tiny).backbone] + [_random_stack(rng) for _ in range(cases - 1)]
        for module in modules:
            size = 1440  # 2^5 * 3^2 * 5: divided exactly by every stack here
            with torch.no_grad():
                out = module.eval()(torch.zeros(1, 1, size, size)).shape[-1]
            expected = size // out
            got = fn(module)
            case = f"{len(list(module.modules())) - 1} modules, {size} px in, {out} px out"
            if got == expected:
                c.ok()
            elif isinstance(got, (int, float)) and got < expected:
                c.fail(case + f": you said {got}, it is {expected}",
                       "pooling layers have strides too (nn.MaxPool2d(2) has stride 2); go through "
                       "module.modules(), which also visits layers nested in Sequentials.")
            else:
                c.fail(case + f": you said {got}, it is {expected}",
                       "multiply the strides of the nn.Conv2d, nn.MaxPool2d and nn.AvgPool2d layers only "
                       "(stride may be an int or a pair).")

    return run_check("total_stride", POINTS["total_stride"], "total stride", body, seed)


def check_fcn8s_fusion(fn, cases: int = 6, seed: int | None = None):
    """``fn(model, pool3, pool4, pool5, size)`` -> the FCN-8s logits; compared with seglab's FCN-8s with
    the same (random, non-zero) weights on odd image sizes."""

    def body(c: Checker, rng: random.Random):
        require(callable(fn), "pass your function fcn8s_fusion itself")
        for _ in range(cases):
            torch.manual_seed(rng.randint(0, 10 ** 6))
            model = FCN(3, "8s", backbone=VGGConfig((4, 4, 6, 6, 8), (1, 1, 1, 1, 1), 8, 3, True, 0.0)).eval()
            for layer in (model.score_pool3, model.score_pool4):
                nn.init.normal_(layer.weight, std=0.5)  # the real model starts them at zero
            height, width = rng.randint(32, 90), rng.randint(32, 90)
            x = torch.randn(1, 3, height, width)
            with torch.no_grad():
                pool3 = model.backbone[:3](x)
                pool4 = model.backbone[3](pool3)
                pool5 = model.backbone[4](pool4)
                expected = model(x)
                got = fn(model, pool3, pool4, pool5, (height, width))
            case = f"image {height}x{width}"
            if not isinstance(got, torch.Tensor):
                c.fail(case, f"return the logits tensor, got {type(got).__name__}")
            elif got.shape != expected.shape:
                c.fail(case + f": shape {tuple(got.shape)} instead of {tuple(expected.shape)}",
                       "after the last upsampling crop to the image size: [..., :height, :width].")
            elif torch.allclose(got, expected, atol=1e-4):
                c.ok()
            else:
                c.fail(case, "score pool5 (classifier, score_fr), upsample 2x (up_pool5), add score_pool4(pool4) "
                             "with model.fuse (a short-cut = summation, cropping the larger map), again with "
                             "up_pool4 and score_pool3(pool3), then model.upsample and crop.")

    return run_check("fcn8s_fusion", POINTS["fcn8s_fusion"], "FCN-8s fusion head", body, seed)
