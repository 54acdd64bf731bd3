"""Checks for notebook 04, U-Net. Oracles: ``torch.cat`` and ``+`` after torchvision's
``center_crop``; seglab's ``DecoderStage`` and a real valid-padding U-Net for the shapes."""

from __future__ import annotations

import random

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from seglab.checks import Checker, require, run_check
from seglab.models import UNet, unet_input_size
from seglab.models.unet import DecoderStage

__all__ = ["check_decoder_stage", "check_shortcut_merge", "check_skip_merge", "check_unet_sizes"]

POINTS = {"skip_merge": 2, "shortcut_merge": 2, "decoder_stage": 3, "unet_sizes": 2}


def _crop_both(decoder, encoder):
    height, width = min(decoder.shape[-2], encoder.shape[-2]), min(decoder.shape[-1], encoder.shape[-1])
    return TF.center_crop(decoder, [height, width]), TF.center_crop(encoder, [height, width])


def _merge_cases(rng: random.Random, cases: int, same_channels: bool):
    for n in range(cases):
        c_dec = rng.randint(1, 6)
        c_enc = c_dec if same_channels else rng.randint(1, 6)
        h, w = rng.randint(3, 12), rng.randint(3, 12)
        # even surpluses, as in U-Net (an odd one has no single centre: conventions round differently)
        surplus = (0, 0) if n == 0 else (rng.choice([0, 2, 4, 6]), rng.choice([0, 2, 4, 6]))
        decoder = torch.randn(2, c_dec, h, w)
        encoder = torch.randn(2, c_enc, h + surplus[0], w + surplus[1])
        if rng.random() < 0.25:  # sometimes the decoder map is the larger one (as in FCN)
            decoder, encoder = torch.randn(2, c_dec, h + surplus[0], w + surplus[1]), torch.randn(2, c_enc, h, w)
        yield decoder, encoder


def _merge_check(fn, grade_id: str, title: str, merge, cases: int, seed, same_channels: bool):
    def body(c: Checker, rng: random.Random):
        require(callable(fn), f"pass your function {grade_id} itself")
        for decoder, encoder in _merge_cases(rng, cases, same_channels):
            expected = merge(*_crop_both(decoder, encoder))
            case = f"decoder {tuple(decoder.shape)}, encoder {tuple(encoder.shape)}"
            got = fn(decoder.clone(), encoder.clone())
            if not isinstance(got, torch.Tensor):
                c.fail(case, f"return a tensor, got {type(got).__name__}")
            elif got.shape[1] != expected.shape[1]:
                c.fail(case + f": {got.shape[1]} channels", f"after concatenation the channels should be C1 + C2 = "
                       f"{expected.shape[1]}" if grade_id == "skip_merge" else "a sum keeps the channel count")
            elif got.shape[-2:] != expected.shape[-2:]:
                c.fail(case + f": size {tuple(got.shape[-2:])}", "centre-crop the larger map to the smaller one's "
                       f"size {tuple(expected.shape[-2:])} (in both dimensions, whichever map is larger)")
            elif torch.allclose(got, expected):
                c.ok()
            elif grade_id == "skip_merge" and torch.allclose(got, torch.cat(_crop_both(decoder, encoder)[::-1], 1)):
                c.fail(case, "put the decoder's channels first: torch.cat([decoder, encoder], dim=1)")
            else:
                c.fail(case, "the crop must be central: offset (H − h) // 2 rows and (W − w) // 2 columns "
                             "(torchvision.transforms.v2.functional.center_crop does it)")

    return run_check(grade_id, POINTS[grade_id], title, body, seed)


def check_skip_merge(fn, cases: int = 20, seed: int | None = None):
    """``fn(decoder, encoder)``: skip-connection = concatenation along channels after a centre crop."""
    return _merge_check(fn, "skip_merge", "skip-connection (concatenation)", lambda d, e: torch.cat([d, e], 1),
                        cases, seed, same_channels=False)


def check_shortcut_merge(fn, cases: int = 20, seed: int | None = None):
    """``fn(decoder, encoder)``: short-cut = summation after a centre crop."""
    return _merge_check(fn, "shortcut_merge", "short-cut (summation)", lambda d, e: d + e, cases, seed,
                        same_channels=True)


def check_decoder_stage(cls, cases: int = 8, seed: int | None = None):
    """``cls(in_channels, out_channels)``: an ``nn.Module`` whose ``forward(x, encoder)`` upsamples 2x
    (halving the channels), concatenates the centre-cropped encoder feature and applies two valid 3x3
    convolutions — shapes compared with seglab's ``DecoderStage(padding="valid")`` on odd sizes."""

    def body(c: Checker, rng: random.Random):
        require(callable(cls), "pass your class DecoderStageExercise itself")
        for _ in range(cases):
            out_channels = rng.randint(1, 4)
            in_channels = 2 * out_channels
            h, w = rng.randint(4, 9), rng.randint(4, 9)
            x = torch.randn(1, in_channels, h, w)
            encoder = torch.randn(1, out_channels, 2 * h + rng.randint(0, 9), 2 * w + rng.randint(0, 9))
            reference = DecoderStage(in_channels, out_channels, padding="valid")
            expected = reference(x, encoder).shape
            stage = cls(in_channels, out_channels)
            require(isinstance(stage, nn.Module), f"{cls.__name__}(...) should be an nn.Module")
            case = f"x {tuple(x.shape)}, encoder {tuple(encoder.shape)}"
            convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
            with torch.no_grad():
                got = stage(x, encoder)
            if not isinstance(got, torch.Tensor) or got.shape != expected:
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                c.fail(case + f": got {shape}, expected {tuple(expected)}",
                       "upsample with nn.ConvTranspose2d(in, out, 2, stride=2), crop the encoder to that size, "
                       "concatenate, then two 3x3 convolutions without padding (each removes 2 pixels)")
            elif not convs or convs[0].in_channels != 2 * out_channels:
                c.fail(case, f"after concatenation the channels should be C1 + C2 = {2 * out_channels}: the first "
                             "3x3 convolution reads both the upsampled and the encoder features")
            else:
                c.ok()

    return run_check("decoder_stage", POINTS["decoder_stage"], "U-Net decoder stage", body, seed)


def check_unet_sizes(output_fn, input_fn, cases: int = 10, seed: int | None = None):
    """``output_fn(input_size, depth)`` against a real valid-padding U-Net's output, and
    ``input_fn(output_size, depth)`` against seglab's tile rule (smallest input, even poolings)."""

    def body(c: Checker, rng: random.Random):
        require(callable(output_fn) and callable(input_fn), "pass your two functions")
        checks = [(572, 4)] + [(rng.randint(100, 300), rng.randint(1, 4)) for _ in range(cases - 1)]
        for size, depth in checks:
            model = UNet(1, 1, depth=depth, base_channels=1, padding="valid", batch_norm=False).eval()
            if size < model.min_input_size():
                size = model.min_input_size() + rng.randint(0, 20)
            with torch.no_grad():
                truth = model(torch.zeros(1, 1, size, size)).shape[-1]
            got = output_fn(size, depth)
            if got == truth:
                c.ok()
            else:
                c.fail(f"input {size}, depth {depth}: you said {got}, the U-Net gives {truth}",
                       "per level down: two 3x3 convolutions (−4), then pool (// 2); the bottleneck −4; per level "
                       "up: ×2, then two convolutions (−4)")
            wanted = rng.randint(1, 200)
            expected = unet_input_size(wanted, depth)
            got_in = input_fn(wanted, depth)
            if got_in == expected:
                c.ok()
            else:
                c.fail(f"output {wanted}, depth {depth}: you said input {got_in}, the smallest tile is {expected}",
                       "go backwards: the size after the bottleneck is ceil((output + 4(2^depth − 1)) / 2^depth); "
                       "then every level down adds 4 and doubles")

    return run_check("unet_sizes", POINTS["unet_sizes"], "valid U-Net sizes", body, seed)
