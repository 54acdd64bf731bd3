"""Checks for notebook 04, U-Net. Oracles: ``torch.cat`` and ``+`` after torchvision's
``center_crop``; seglab's ``DecoderStage`` and a real valid-padding U-Net (on the ``meta`` device) for the shapes."""

from __future__ import annotations

import functools
import random

import torch
from torch import nn

from seglab.checks import Exercise, Failure, OffLimits, check, require
from seglab.checks.arithmetic import log_uniform
from seglab.checks.borrowed import ALL_OPS
from seglab.checks.upsampling import randn
from seglab.models import UNet, unet_input_size
from seglab.models.unet import DecoderStage

__all__ = ["check_decoder_stage", "check_shortcut_merge", "check_skip_merge", "check_unet_sizes", "check_weight_map"]


def _crop_both(decoder, encoder):
    from torchvision.transforms.v2 import functional as TF  # the oracle (torchvision takes seconds to import)

    height, width = min(decoder.shape[-2], encoder.shape[-2]), min(decoder.shape[-1], encoder.shape[-1])
    return TF.center_crop(decoder, [height, width]), TF.center_crop(encoder, [height, width])


# --- skip-connection and short-cut ---------------------------------------------------------------------------

def _merge_cases(same_channels: bool):
    def make(rng: random.Random, n: int) -> list[dict]:
        cases = []
        for index in range(n):
            c_dec = rng.randint(1, 6)
            c_enc = c_dec if same_channels else rng.randint(1, 6)
            h, w = rng.randint(3, 12), rng.randint(3, 12)
            # even surpluses, as in U-Net (an odd one has no single centre: conventions round differently)
            surplus = (0, 0) if index == 0 else (rng.choice([0, 2, 4, 6]), rng.choice([0, 2, 4, 6]))
            if index in (1, 2):  # each map once the larger one, by different surpluses, on a non-square map
                surplus, (h, w) = tuple(rng.sample([2, 4, 6], 2)), rng.sample(range(3, 13), 2)
            big = (h + surplus[0], w + surplus[1])
            if index == 1 or (index != 2 and rng.random() < 0.25):  # sometimes the decoder map is the larger one
                decoder, encoder = randn(rng, 2, c_dec, *big), randn(rng, 2, c_enc, h, w)
            else:
                decoder, encoder = randn(rng, 2, c_dec, h, w), randn(rng, 2, c_enc, *big)
            cases.append({"decoder": decoder, "encoder": encoder})
        return cases

    return make


def _merge_call(name: str):
    def call(case: dict, fn):
        require(callable(fn), f"pass your function {name} itself")
        return fn(case["decoder"].clone(), case["encoder"].clone())

    return call


def _merge_judge(skip: bool):
    def judge(case: dict, got):
        decoder, encoder = case["decoder"], case["encoder"]
        cropped = _crop_both(decoder, encoder)
        expected = torch.cat(cropped, 1) if skip else cropped[0] + cropped[1]
        label = f"decoder {tuple(decoder.shape)}, encoder {tuple(encoder.shape)}"
        if not isinstance(got, torch.Tensor):
            return Failure(label, f"return a tensor, got {type(got).__name__}", "output shape")
        if got.dim() != 4 or got.shape[0] != expected.shape[0]:
            return Failure(label + f": shape {tuple(got.shape)}",
                           f"the result should have the shape {tuple(expected.shape)}", "output shape")
        if got.shape[1] != expected.shape[1]:
            return Failure(label + f": {got.shape[1]} channels",
                           f"after concatenation the channels should be C1 + C2 = {expected.shape[1]}" if skip
                           else "a sum keeps the channel count", "output shape")
        if got.shape[-2:] != expected.shape[-2:]:
            return Failure(label + f": size {tuple(got.shape[-2:])}", "centre-crop the larger map to the smaller "
                           f"one's size {tuple(expected.shape[-2:])} (in both dimensions, whichever map is larger)",
                           "output shape")
        if torch.allclose(got, expected):
            return None
        if skip and torch.allclose(got, torch.cat(cropped[::-1], 1)):
            return Failure(label, "put the decoder's channels first: torch.cat([decoder, encoder], dim=1)", "values",
                           expected)
        return Failure(label, "the crop must be central: offset (H − h) // 2 rows and (W − w) // 2 columns "
                              "(torchvision.transforms.v2.functional.center_crop does it)", "values", expected)

    return judge


MERGES = OffLimits(code=("seglab/layers.py:Skip.*", "seglab/layers.py:ShortCut.*", "seglab/layers.py:_align"),
                   names=("Skip", "ShortCut"), why="crop and merge the two maps yourself")

MERGE_PARTS = (("output shape", 1), ("values", 1))
UNCROPPED = "the maps differ in size: centre-crop the larger one to the smaller one's size first (center_crop)"
SKIP_MERGE = Exercise("skip_merge", "skip-connection (concatenation)", 2, _merge_cases(False),
                      _merge_call("skip_merge"), _merge_judge(True), 20, MERGES, MERGE_PARTS,
                      error_hints=(("Sizes of tensors must match", UNCROPPED),))
SHORTCUT_MERGE = Exercise("shortcut_merge", "short-cut (summation)", 2, _merge_cases(True),
                          _merge_call("shortcut_merge"), _merge_judge(False), 20, MERGES, MERGE_PARTS,
                          error_hints=(("must match the size of tensor", UNCROPPED),))


def check_skip_merge(fn, cases: int = 20, seed: int | None = None):
    """``fn(decoder, encoder)``: skip-connection = concatenation along channels after a centre crop."""
    return check(SKIP_MERGE, fn, cases=cases, seed=seed)


def check_shortcut_merge(fn, cases: int = 20, seed: int | None = None):
    """``fn(decoder, encoder)``: short-cut = summation after a centre crop."""
    return check(SHORTCUT_MERGE, fn, cases=cases, seed=seed)


# --- decoder stage -------------------------------------------------------------------------------------------

def _stage_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for _ in range(n):
        out_channels = rng.randint(1, 4)
        h, w = rng.randint(4, 9), rng.randint(4, 9)
        cases.append({"in_channels": 2 * out_channels, "out_channels": out_channels,
                      "x": randn(rng, 1, 2 * out_channels, h, w),
                      "encoder": randn(rng, 1, out_channels, 2 * h + rng.randint(0, 9), 2 * w + rng.randint(0, 9))})
    return cases


LAYERS_WITH_WEIGHTS = (nn.ConvTranspose2d, nn.Conv2d, nn.BatchNorm2d)


def _weighted_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, LAYERS_WITH_WEIGHTS)]


def _stage_call(case: dict, cls):
    require(callable(cls), "pass your class DecoderStageExercise itself")
    stage = cls(case["in_channels"], case["out_channels"])
    require(isinstance(stage, nn.Module), f"{getattr(cls, '__name__', 'your class')}(...) should be an nn.Module")
    stage.eval()  # BatchNorm with its running statistics: the output is a function of the weights alone
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        got = stage(case["x"], case["encoder"])
    layers = [{"type": type(m).__name__, "state": {k: v.detach().clone() for k, v in m.state_dict().items()}}
              for m in _weighted_layers(stage)]  # judged by running seglab's stage with these very weights
    return {"output": got, "first_conv_in_channels": convs[0].in_channels if convs else None, "layers": layers}


def _reference_stage(case: dict, layers) -> nn.Module | None:
    """seglab's valid ``DecoderStage`` with the answer's weights; None when its layers are not the stage's
    (a ConvTranspose2d, then a ConvBlock's two convolutions with BatchNorm, of the same shapes)."""
    reference = DecoderStage(case["in_channels"], case["out_channels"], padding="valid").eval()
    ours = _weighted_layers(reference)
    if not isinstance(layers, list) or len(layers) != len(ours):
        return None
    with torch.no_grad():
        for layer, theirs in zip(ours, layers, strict=True):
            if not isinstance(theirs, dict):  # data from the student's kernel: anything may come back
                return None
            state = theirs.get("state")
            if theirs.get("type") != type(layer).__name__ or not isinstance(state, dict) or \
                    set(state) != set(layer.state_dict()) or \
                    any(not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape
                        for k, v in layer.state_dict().items()):
                return None
            layer.load_state_dict(state)
    return reference


STAGE_PARTS = "the upsampled decoder map, then the encoder map, concatenated in this order (decoder first)"


def _stage_judge(case: dict, got):
    x, encoder, out_channels = case["x"], case["encoder"], case["out_channels"]
    with torch.no_grad():
        expected = DecoderStage(case["in_channels"], out_channels, padding="valid")(x, encoder).shape
    label = f"x {tuple(x.shape)}, encoder {tuple(encoder.shape)}"
    output = got["output"]
    if not isinstance(output, torch.Tensor) or output.shape != expected:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        return Failure(label + f": got {shape}, expected {tuple(expected)}",
                       "upsample with nn.ConvTranspose2d(in, out, 2, stride=2), crop the encoder to that size, "
                       "concatenate, then two 3x3 convolutions without padding (each removes 2 pixels)",
                       "output shape", list(expected), shape)
    if got["first_conv_in_channels"] != 2 * out_channels:
        return Failure(label, f"after concatenation the channels should be C1 + C2 = {2 * out_channels}: the first "
                              "3x3 convolution reads both the upsampled and the encoder features",
                       "skip-connection channels", 2 * out_channels, got["first_conv_in_channels"])
    reference = _reference_stage(case, got.get("layers"))
    if reference is None:
        return Failure(label, "build the stage from exactly the three parts above: nn.ConvTranspose2d(in_channels, "
                              "out_channels, 2, stride=2), the skip-connection, and ConvBlock(2 * out_channels, "
                              "out_channels, padding=\"valid\") (the check runs seglab's stage with your layers' "
                              "weights)", "values")
    with torch.no_grad():
        wanted = reference(x, encoder)
    if torch.allclose(output, wanted, atol=1e-4, rtol=1e-4):
        return None
    return Failure(label + " (pictures: channel 0)", f"with your layers' weights seglab's stage gives other values: "
                   f"upsample x first, then concatenate {STAGE_PARTS}, then the ConvBlock", "values",
                   wanted[0, 0], output[0, 0])


DECODER_STAGE = Exercise(
    "decoder_stage", "U-Net decoder stage", 3, _stage_cases, _stage_call, _stage_judge, 8,
    OffLimits(code=("seglab/models/unet.py:DecoderStage.*", "seglab/models/unet.py:UNet.*"),
              names=("DecoderStage", "UNet"), why="put the upsampling, the skip-connection and the convolutions "
                                                  "together yourself"),
    (("output shape", 1), ("skip-connection channels", 1), ("values", 1)),
    error_hints=(("channels, but got", "a layer got a different number of channels than it was built for: after the "
                                       "skip-connection the first 3x3 convolution reads the decoder's and the "
                                       "encoder's channels, 2 · out_channels"),
                 ("Sizes of tensors must match", UNCROPPED)))


def check_decoder_stage(cls, cases: int = 8, seed: int | None = None):
    """``cls(in_channels, out_channels)``: an ``nn.Module`` whose ``forward(x, encoder)`` upsamples 2x
    (halving the channels), concatenates the centre-cropped encoder feature and applies two valid 3x3
    convolutions — shapes compared with seglab's ``DecoderStage(padding="valid")`` on odd sizes, values
    with that stage run with the answer's own weights (in eval mode)."""
    return check(DECODER_STAGE, cls, cases=cases, seed=seed)


# --- valid U-Net sizes ---------------------------------------------------------------------------------------

# Every second case's input size comes from a range far too large to tabulate the output size over beforehand
# with a U-Net or seglab's helpers (up to 10^9, log-uniform, with one table per depth): the real valid-padding
# U-Net on the meta device gives its output size for any input, with nothing allocated. The tile rule's output
# sizes stay small: the notebook allows a search upwards from 1, which costs per case what a table of every
# output size up to that bound costs once, so that half can be tabulated whatever its range; there the names
# the grader looks for in the answer's source stand.
LARGE_UNET_SIZE = 10 ** 9


@functools.cache
def _valid_unet(depth: int) -> UNet:
    """The valid-padding U-Net of this depth on the meta device (its shapes do not depend on its weights)."""
    return UNet(1, 1, depth=depth, base_channels=1, padding="valid", batch_norm=False).eval().to("meta")


def _sizes_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for index in range(n):
        depth = 4 if index == 0 else rng.randint(1, 4)
        model = _valid_unet(depth)
        if index == 0:  # the paper's tile
            size = 572
        elif index % 2:  # a size that a hint can show
            size = rng.randint(100, 300)
            if size < model.min_input_size():
                size = model.min_input_size() + rng.randint(0, 20)
        else:
            size = log_uniform(rng, model.min_input_size(), LARGE_UNET_SIZE)
        with torch.no_grad():
            truth = model(torch.zeros(1, 1, size, size, device="meta")).shape[-1]
        cases.append({"size": size, "depth": depth, "wanted": rng.randint(1, 200), "_truth": truth})
    return cases


def _sizes_call(case: dict, output_fn, input_fn):
    require(callable(output_fn) and callable(input_fn), "pass your two functions")
    return [output_fn(case["size"], case["depth"]), input_fn(case["wanted"], case["depth"])]


def _sizes_judge(case: dict, got):
    size, depth, wanted, truth = case["size"], case["depth"], case["wanted"], case["_truth"]
    got_out, got_in = got
    failures = []
    if got_out != truth:
        failures.append(Failure(
            f"input {size}, depth {depth}: you said {got_out}, the U-Net gives {truth}",
            "per level down: two 3x3 convolutions (−4), then pool (// 2); the bottleneck −4; per level up: ×2, then "
            "two convolutions (−4)", "output size", truth, got_out))
    expected = unet_input_size(wanted, depth)
    if got_in != expected:
        failures.append(Failure(
            f"output {wanted}, depth {depth}: you said input {got_in}, the smallest tile is {expected}",
            "work backwards from the output: undo each level up (its two convolutions, then its 2x upsampling: "
            "which size must the map below have, at least?), then the bottleneck, then each level down (its "
            "pooling must see an even size, then its two convolutions)", "input size", expected, got_in))
    return failures or None


UNET_SIZES = Exercise(
    "unet_sizes", "valid U-Net sizes", 2, _sizes_cases, _sizes_call, _sizes_judge, 10,
    OffLimits(code=("seglab/models/unet.py:unet_output_size", "seglab/models/unet.py:unet_input_size",
                    "seglab/models/unet.py:UNet.*", "seglab/models/base.py:SegmentationModel.*"),
              ops=ALL_OPS,  # size formulas run no torch operator at all
              names=("UNet", "min_input_size"),
              why="compute the sizes with the formulas, without running a U-Net or seglab's size helpers"),
    (("output size", 1), ("input size", 1)), independent_parts=True)


def check_unet_sizes(output_fn, input_fn, cases: int = 10, seed: int | None = None):
    """``output_fn(input_size, depth)`` against a real valid-padding U-Net's output, and
    ``input_fn(output_size, depth)`` against seglab's tile rule (smallest input, even poolings)."""
    return check(UNET_SIZES, output_fn, input_fn, cases=cases, seed=seed)


# --- the U-Net paper's weight map ----------------------------------------------------------------------------

def random_layout(rng: random.Random, height: int, width: int, objects: int) -> torch.Tensor:
    """An instance map (H, W) int64 of rectangles and discs, ids 1..objects; later ones may touch or cover
    earlier ones (an object can lose its pixels: ids need not be contiguous)."""
    instances = torch.zeros(height, width, dtype=torch.int64)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for label in range(1, objects + 1):
        y, x, size = rng.randrange(height), rng.randrange(width), rng.randint(1, 6)
        if rng.random() < 0.5:
            instances[y:y + size, x:x + rng.randint(1, 6)] = label
        else:
            instances[(ys - y) ** 2 + (xs - x) ** 2 <= size ** 2 / 2] = label
    return instances


def reference_weight_map(instances: torch.Tensor, w0: float, sigma: float,
                         background_only: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The oracle, by brute force (every pixel against every object pixel): ``(w_c, separation term)``.
    Written apart from ``seglab.data.weight_map``, which works within each object's reach.
    ``background_only=False``: the term on every pixel (a likely mistake, so the check can name it)."""
    height, width = instances.shape
    objects = instances > 0
    count, total = int(objects.sum()), instances.numel()
    if count in (0, total):
        w_c = torch.ones(height, width, dtype=torch.float64)
    else:
        w_c = torch.where(objects, total / (2 * count), total / (2 * (total - count))).double()
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixels = torch.stack([ys.flatten(), xs.flatten()], 1).double()
    distances = [torch.cdist(pixels, torch.nonzero(instances == label).double()).min(1).values.view(height, width)
                 for label in instances.unique().tolist() if label != 0]
    if len(distances) < 2:
        return w_c, torch.zeros(height, width, dtype=torch.float64)
    nearest = torch.stack(distances).sort(0).values
    term = w0 * torch.exp(-((nearest[0] + nearest[1]) ** 2) / (2 * sigma ** 2))
    return w_c, torch.where(objects, 0.0, term) if background_only else term


def _weight_cases(rng: random.Random, n: int) -> list[dict]:
    cases = []
    for index in range(n):
        if index == 0:  # two bars with a one-pixel gap: the paper's touching cells in miniature
            instances = torch.zeros(9, 11, dtype=torch.int64)
            instances[:, 1:5], instances[:, 6:10] = 1, 2
            cases.append({"instances": instances, "w0": 10.0, "sigma": 5.0})
            continue
        height, width = rng.randint(8, 30), rng.randint(8, 30)
        cases.append({"instances": random_layout(rng, height, width, rng.randint(1, 6)),
                      "w0": rng.choice([5.0, 10.0]), "sigma": round(rng.uniform(1.5, 6.0), 2)})
    return cases


def _weight_call(case: dict, fn):
    require(callable(fn), "pass your function weight_map itself")
    output = fn(case["instances"].clone(), case["w0"], case["sigma"])
    return output.double() if isinstance(output, torch.Tensor) and output.is_floating_point() else output


def _constant_per_class(values: torch.Tensor, objects: torch.Tensor) -> bool:
    """One value on all object pixels and one on all background pixels: a class weight, right or wrong, but a
    weight (finite, at most N = the pixel count, which bounds N / (2·N_c)). The tolerance is absolute, so a
    huge constant cannot swallow the separation term it is meant to reveal."""
    bound = values.numel()
    return all(bool(torch.isfinite(v).all()) and float(v.abs().max()) <= bound and float(v.max() - v.min()) <= 1e-3
               for v in (values[objects], values[~objects]) if v.numel())


def _weight_judge(case: dict, got):
    """The two parts are judged apart: w_c where the separation term vanishes, the separation term as what
    the answer adds to a weight per class (so a wrong w_c does not cost the term's points, nor the reverse)."""
    instances, w0, sigma = case["instances"], case["w0"], case["sigma"]
    w_c, term = reference_weight_map(instances, w0, sigma)
    expected = w_c + term
    label = (f"{instances.shape[0]}x{instances.shape[1]} map, {len(instances.unique()) - 1} objects, w0={w0:g}, "
             f"sigma={sigma:g}")
    if not isinstance(got, torch.Tensor) or got.shape != instances.shape or not got.is_floating_point():
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        hint = f"return a float tensor of the instance map's shape {tuple(instances.shape)}"
        return [Failure(label + f": got {shape}", hint, part, list(instances.shape), shape)
                for part in ("class weights w_c", "separation term")]
    if torch.allclose(got, expected, rtol=1e-4, atol=1e-4):
        return None
    if torch.allclose(got, w_c + reference_weight_map(instances, w0, sigma, background_only=False)[1],
                      rtol=1e-4, atol=1e-4):
        return Failure(label, "add the separation term on background pixels only: on a nucleus w(x) is its class "
                              "weight alone", "separation term", expected, got)
    objects, failures = instances > 0, []
    quiet = term < 1e-9  # here w(x) = w_c(x): object pixels, and background far from two objects
    if not torch.allclose(got[quiet], w_c[quiet], rtol=1e-4, atol=1e-4):
        if torch.allclose(got[quiet], torch.ones_like(got[quiet])):
            hint = "add w_c: every pixel of a class weighs N / (2·N_c) (N pixels in all, N_c of that class)"
        else:
            hint = ("w_c is N / (2·N_c) for background and for object pixels (N pixels in all, N_c of that class), "
                    "1 everywhere when the map has only one class")
        failures.append(Failure(label, hint, "class weights w_c", expected, got))
    if not _constant_per_class(got - term, objects):
        if _constant_per_class(got - term ** 2 / w0, objects):  # exp(-D²/σ²) = (term / w0)²
            hint = "the exponent is −(d1 + d2)² / (2σ²): did you forget the 2?"
        else:
            hint = ("d1 and d2 are the distances from the pixel to the nearest pixel of its nearest and of its second "
                    "nearest object (Euclidean, between pixel centres; two different ids), and the term is added on "
                    "background pixels only")
        failures.append(Failure(label, hint, "separation term", expected, got))
    return failures or None


WEIGHT_MAP = Exercise(
    "weight_map", "U-Net weight map", 3, _weight_cases, _weight_call, _weight_judge, 12,
    OffLimits(code=("seglab/data/weight_map.py:unet_weight_map", "seglab/data/weight_map.py:class_balance",
                    "seglab/checks/unet.py:reference_weight_map"),
              names=("unet_weight_map", "class_balance", "reference_weight_map"),
              why="compute the class weights and the distances yourself"),
    (("class weights w_c", 1), ("separation term", 2)), independent_parts=True)


def check_weight_map(fn, cases: int = 12, seed: int | None = None):
    """``fn(instances, w0, sigma)`` -> the U-Net paper's weight map, against a brute-force computation on
    fresh random instance layouts."""
    return check(WEIGHT_MAP, fn, cases=cases, seed=seed)


EXERCISES = (SKIP_MERGE, SHORTCUT_MERGE, DECODER_STAGE, UNET_SIZES, WEIGHT_MAP)
