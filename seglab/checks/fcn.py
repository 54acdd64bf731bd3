"""Checks for notebook 03, fully convolutional networks. Oracles: the original ``nn.Linear`` layer,
the shapes PyTorch actually produces, and seglab's FCN run with the same weights."""

from __future__ import annotations

import random

import torch
from torch import nn

from seglab.checks import Exercise, Failure, OffLimits, check, require
from seglab.checks.borrowed import RUNNING_A_LAYER
from seglab.checks.upsampling import randn
from seglab.models import FCN, VGGConfig

__all__ = ["check_fcn8s_fusion", "check_linear_to_conv", "check_total_stride"]

# --- Linear -> Conv2d ----------------------------------------------------------------------------------------

def _linear_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for index in range(n):
        channels, size, out = rng.randint(1, 6), rng.choice([1, 1, 2, 3, 7]) if index else 1, rng.randint(1, 8)
        if index == 1:  # the case that tells a wrong reshape (channels last, rows and columns swapped) apart
            channels, size = rng.randint(2, 6), rng.choice([2, 3, 7])
        features = channels * size * size
        bound = features ** -0.5
        cases.append({"channels": channels, "size": size, "weight": randn(rng, out, features) * bound,
                      "bias": randn(rng, out) * bound, "x": randn(rng, 2, channels, size, size)})
    return cases


def _linear_call(case: dict, fn):
    require(callable(fn), "pass your function linear_to_conv itself")
    channels, size, weight = case["channels"], case["size"], case["weight"]
    linear = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(case["bias"])
    conv = fn(linear, channels, size)
    require(isinstance(conv, nn.Conv2d), f"return an nn.Conv2d, got {type(conv).__name__} for a Linear("
                                         f"{channels}·{size}·{size} → {weight.shape[0]})")
    try:
        with torch.no_grad():
            output = conv(case["x"])
    except RuntimeError as error:
        return {"error": str(error)[:80]}
    return {"output": output, "bias": None if conv.bias is None else conv.bias.detach()}


def _linear_judge(case: dict, got):
    channels, size, weight, bias, x = (case[key] for key in ("channels", "size", "weight", "bias", "x"))
    out = weight.shape[0]
    label = f"Linear({channels}·{size}·{size} → {out}), feature map {channels}x{size}x{size}"
    if got.get("error") is not None:
        return Failure(label, f"the convolution cannot read the feature map ({got['error']}): it needs "
                              f"in_channels={channels} and kernel_size={size}", "one position per map")
    output = got["output"]
    expected = x.flatten(1) @ weight.T + bias
    if not isinstance(output, torch.Tensor) or output.shape != (2, out, 1, 1):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        return Failure(label, f"on the {size}x{size} map the convolution should give one position: output (2, {out}, "
                              f"1, 1), got {shape}. Use kernel_size = {size}, no padding.", "one position per map",
                       [2, out, 1, 1], shape)
    if torch.allclose(output.flatten(1), expected, atol=1e-5):
        return None
    received_bias = got["bias"]
    if not isinstance(received_bias, torch.Tensor) or received_bias.shape != bias.shape or \
            not torch.allclose(received_bias, bias):
        return Failure(label, "copy the bias too", "values", expected, output.flatten(1))
    return Failure(label, "the weights are in the wrong places: compare the order in which flatten() reads a "
                          "(C, k, k) map (channel by channel, then row by row) with the layout of a Conv2d weight.",
                   "values", expected, output.flatten(1))


LINEAR_TO_CONV = Exercise(
    "linear_to_conv", "Linear → Conv2d", 3, _linear_cases, _linear_call, _linear_judge, 10,
    OffLimits(code=("seglab/models/fcn.py:convolutionalize",), names=("convolutionalize",),
              why="build the nn.Conv2d and copy the reshaped weights yourself"),
    (("one position per map", 1), ("values", 2)))


def check_linear_to_conv(fn, cases: int = 10, seed: int | None = None):
    """``fn(linear, channels, size)`` -> an ``nn.Conv2d`` whose output on a ``(B, channels, size, size)``
    map equals the Linear layer applied to the flattened map."""
    return check(LINEAR_TO_CONV, fn, cases=cases, seed=seed)


# --- total stride --------------------------------------------------------------------------------------------

TINY_VGG = VGGConfig((4, 4, 4, 4, 4), (1, 1, 1, 1, 1), 4, 3, True, 0.0)
SIZE = 1440  # 2^5 * 3^2 * 5: divided exactly by every stack here


def random_layer_stack(rng: random.Random) -> list[list]:
    """A small random stack of convolutions, poolings and BatchNorm, as data for :func:`build_stack`: at
    most four factors of 2 and two of 3 in its strides, so a 1440-pixel input is divided exactly.

    The answer reads a module, so a table made beforehand would be keyed by what it prints (its layers'
    kinds, channels, kernel sizes, strides ...): with 80 kinds of convolution (5 odd kernel sizes, "same"
    padding, 1 to 16 output channels, strides 1 and 2) such stacks number some 10^13."""
    layers: list[list] = []
    channels, twos, threes = 1, 0, 0
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        if kind < 0.4:
            k, stride = rng.choice([1, 3, 5, 7, 9]), 2 if rng.random() < 0.3 and twos < 4 else 1
            twos += stride == 2
            out = rng.randint(1, 16)
            layers += [["conv", channels, out, k, stride, k // 2], ["relu"]]
            channels = out
        elif kind < 0.8 and twos < 4:
            twos += 1
            layers.append(rng.choice([["maxpool", 2, 2], ["avgpool", 2, [2, 2]]]))
        elif kind < 0.8 and threes < 2:
            threes += 1
            layers.append(["maxpool", 3, 3])
        else:
            layers.append(["batchnorm", channels])
    return layers


def build_stack(layers) -> nn.Module:
    """The module that :func:`random_layer_stack`'s data describes (``"fcn_backbone"``: a tiny FCN backbone)."""
    if layers == "fcn_backbone":
        return FCN(2, "32s", 1, backbone=TINY_VGG).backbone
    modules: list[nn.Module] = []
    for kind, *args in layers:
        if kind == "conv":
            c_in, c_out, k, stride, padding = args
            modules.append(nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding))
        elif kind == "relu":
            modules.append(nn.ReLU())
        elif kind == "maxpool":
            modules.append(nn.MaxPool2d(args[0], stride=args[1]))
        elif kind == "avgpool":
            modules.append(nn.AvgPool2d(args[0], stride=tuple(args[1])))
        elif kind == "batchnorm":
            modules.append(nn.BatchNorm2d(args[0]))
        else:
            raise ValueError(f"unknown layer {kind!r}")
    return nn.Sequential(*modules)


# Every public check holds both: nested Sequentials (FCN's backbone), and one stack with a strided convolution
# (2), an average pooling with a stride pair (5, 5) and a max pooling with an int stride (3): strides of
# different primes, so that each kind left out, or a pair counted twice, gives its own product (and hint).
TELLING_STACK = [["conv", 1, 2, 3, 2, 1], ["relu"], ["avgpool", 5, [5, 5]], ["maxpool", 3, 3], ["batchnorm", 2]]


def _stride_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for layers in (["fcn_backbone", TELLING_STACK] + [random_layer_stack(rng) for _ in range(n)])[:n]:
        module = build_stack(layers).eval().to("meta")  # PyTorch's own shape rules, without the arithmetic
        with torch.no_grad():
            out = module(torch.zeros(1, 1, SIZE, SIZE, device="meta")).shape[-1]
        cases.append({"layers": layers, "_modules": len(list(module.modules())) - 1, "_out": out})
    return cases


def _stride_call(case: dict, fn):
    require(callable(fn), "pass your function total_stride itself")
    return fn(build_stack(case["layers"]))


def _stride_factors(layers) -> dict[str, int]:
    """The product of the strides of each kind of layer in the stack (one factor per layer and axis)."""
    factors = {"conv": 1, "maxpool": 1, "avgpool": 1}
    kinds = {nn.Conv2d: "conv", nn.MaxPool2d: "maxpool", nn.AvgPool2d: "avgpool"}
    for layer in build_stack(layers).modules():
        kind = kinds.get(type(layer))
        if kind is not None:
            stride = layer.stride
            factors[kind] *= stride if isinstance(stride, int) else stride[0]
    return factors


def _stride_diagnosis(layers, got) -> str | None:
    """The likely mistake, when ``got`` equals the total stride with some kinds of layers left out or counted
    twice; None when no such product matches."""
    factors = _stride_factors(layers)
    conv, maxpool, avgpool = factors["conv"], factors["maxpool"], factors["avgpool"]
    guesses = [  # (the product such an answer returns, what it left out), most telling first
        (maxpool * avgpool, conv > 1, "convolutions with stride 2 halve the size too (nn.Conv2d(..., stride=2)); "
                                      "count every nn.Conv2d."),
        (conv, maxpool * avgpool > 1, "pooling layers have strides too (nn.MaxPool2d(2) has stride 2); go through "
                                      "module.modules(), which also visits layers nested in Sequentials."),
        (conv * maxpool, avgpool > 1, "nn.AvgPool2d counts too; here its stride is a pair such as (2, 2): for a "
                                      "square image take one element of it."),
        (conv * avgpool, maxpool > 1, "nn.MaxPool2d counts too; its stride is an int (the kernel size by default)."),
        (conv ** 2 * maxpool * avgpool ** 2, conv * avgpool > 1,
         "a stride pair (2, 2) is one factor 2 along each axis, not two factors for one axis: take one element "
         "of each pair (nn.Conv2d always stores a pair)."),
    ]
    for product, possible, diagnosis in guesses:
        if possible and got == product:
            return diagnosis
    return None


def _stride_judge(case: dict, got):
    out = case["_out"]
    expected = SIZE // out
    label = f"{case['_modules']} modules, {SIZE} px in, {out} px out: you said {got}, it is {expected}"
    if got == expected and isinstance(got, (int, float)):
        return None
    if isinstance(got, (int, float)):
        diagnosis = _stride_diagnosis(case["layers"], got)
        if diagnosis is not None:
            return label, diagnosis
    return label, ("multiply the strides of every nn.Conv2d, nn.MaxPool2d and nn.AvgPool2d layer in "
                   "module.modules(), and nothing else (a stride may be an int or a pair).")


TOTAL_STRIDE = Exercise(
    "total_stride", "total stride", 2, _stride_cases, _stride_call, _stride_judge, 12,
    OffLimits(code=("seglab/arithmetic.py:layer_geometry", "seglab/arithmetic.py:receptive_field",
                    "seglab/arithmetic.py:receptive_fields", "seglab/summary.py:summary"),
              ops=RUNNING_A_LAYER,  # (building the case's module, in the check's own call, runs other operators)
              names=("layer_geometry", "receptive_field", "receptive_fields", "summary"),
              why="read the strides from the layers, without running the module or seglab's helpers"))


def check_total_stride(fn, cases: int = 12, seed: int | None = None):
    """``fn(module)`` -> the product of the strides of its convolutions and poolings, compared with
    the ratio of input to output size that PyTorch produces."""
    return check(TOTAL_STRIDE, fn, cases=cases, seed=seed)


# --- FCN-8s fusion -------------------------------------------------------------------------------------------

def fusion_model(seed: int) -> FCN:
    """A small FCN-8s with random weights fixed by ``seed`` (its pool3/pool4 scores non-zero)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FCN(3, "8s", backbone=VGGConfig((4, 4, 6, 6, 8), (1, 1, 1, 1, 1), 8, 3, True, 0.0)).eval()
        for layer in (model.score_pool3, model.score_pool4):
            nn.init.normal_(layer.weight, std=0.5)  # the real model starts them at zero
        with torch.no_grad():  # the two learnable 2x upsamplings start equal (bilinear): make them differ
            for layer in (model.up_pool5, model.up_pool4):
                for parameter in layer.parameters():
                    parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def _fusion_input(case: dict) -> torch.Tensor:
    generator = torch.Generator().manual_seed(case["seed"] + 1)
    return torch.randn(1, 3, case["height"], case["width"], generator=generator)


def _fusion_cases(rng: random.Random, n: int) -> list[dict]:
    return [{"seed": rng.randint(0, 10 ** 6), "height": rng.randint(32, 90), "width": rng.randint(32, 90)}
            for _ in range(n)]


def _fusion_call(case: dict, fn):
    require(callable(fn), "pass your function fcn8s_fusion itself")
    model, x = fusion_model(case["seed"]), _fusion_input(case)
    with torch.no_grad():
        pools = model.features(x, ("pool3", "pool4", "pool5"))
        return fn(model, pools["pool3"], pools["pool4"], pools["pool5"], (case["height"], case["width"]))


def _fusion_judge(case: dict, got):
    with torch.no_grad():
        expected = fusion_model(case["seed"])(_fusion_input(case))
    label = f"image {case['height']}x{case['width']}"
    if not isinstance(got, torch.Tensor):
        return Failure(label, f"return the logits tensor, got {type(got).__name__}", "output shape")
    if got.shape != expected.shape:
        return Failure(label + f": shape {tuple(got.shape)} instead of {tuple(expected.shape)}",
                       "after the last upsampling crop to the image size: [..., :height, :width].", "output shape",
                       list(expected.shape), list(got.shape))
    if torch.allclose(got, expected, atol=1e-4):
        return None
    return Failure(label + " (pictures: the scores of class 0)",
                   "score pool5 (classifier, score_fr), upsample 2x (up_pool5), add score_pool4(pool4) with model.fuse "
                   "(a short-cut = summation, cropping the larger map), again with up_pool4 and score_pool3(pool3), "
                   "then model.upsample and crop.", "values", expected[0, 0], got[0, 0])


FCN8S_FUSION = Exercise(
    "fcn8s_fusion", "FCN-8s fusion head", 3, _fusion_cases, _fusion_call, _fusion_judge, 6,
    OffLimits(code=("seglab/models/fcn.py:FCN.logits", "seglab/models/fcn.py:FCN.coarse_scores",
                    "seglab/models/fcn.py:FCN._coarse_scores"),
              names=("coarse_scores", "_coarse_scores"),
              why="chain the model's score, upsampling and fuse layers yourself"),
    (("output shape", 1), ("values", 2)))


def check_fcn8s_fusion(fn, cases: int = 6, seed: int | None = None):
    """``fn(model, pool3, pool4, pool5, size)`` -> the FCN-8s logits; compared with seglab's FCN-8s with
    the same (random, non-zero) weights on odd image sizes."""
    return check(FCN8S_FUSION, fn, cases=cases, seed=seed)


EXERCISES = (LINEAR_TO_CONV, TOTAL_STRIDE, FCN8S_FUSION)
