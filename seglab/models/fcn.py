"""Fully convolutional networks (Long, Shelhamer and Darrell, CVPR 2015): FCN-32s, FCN-16s, FCN-8s.

A VGG-style classifier becomes fully convolutional when its fully connected layers become
convolutions (fc6: a kxk convolution over the pool5 features, fc7: a 1x1 convolution). A 1x1 score
layer then predicts class scores at 1/32 of the input resolution (the total stride of the five
poolings); a transposed convolution initialised as bilinear upsampling brings them back to the
input size. FCN-16s and FCN-8s add the scores of pool4 and pool3 through short-cuts (summation)
before upsampling, which sharpens the result.

Alignment: the 2x2 poolings use ``ceil_mode=True`` and all convolutions keep the size, so cell ``i``
of a stride-``s`` map covers input pixels ``[s*i, s*(i+1))``. The upsampling layers keep that cell
alignment, so every crop here keeps the top-left corner.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from seglab.layers import ShortCut, TransposedConvUpsample, conv_bn_relu
from seglab.models.base import SegmentationModel
from seglab.models.registry import register_model

__all__ = ["BACKBONES", "FCN", "VGGConfig", "convolutionalize", "fcn8s", "fcn16s", "fcn32s"]

VARIANTS = ("32s", "16s", "8s")


@dataclass(frozen=True)
class VGGConfig:
    """Widths of a VGG-style backbone and its convolutionalised classifier."""

    widths: tuple[int, ...] = (64, 128, 256, 512, 512)  # channels of the five stages
    convs_per_stage: tuple[int, ...] = (2, 2, 3, 3, 3)  # 3x3 convolutions before each pooling
    fc_channels: int = 4096  # channels of fc6 and fc7
    fc6_kernel: int = 7  # VGG16's fc6 sees a 7x7 pool5 window
    batch_norm: bool = False
    dropout: float = 0.5


#: ``"vgg16"``: the paper's widths (loads torchvision's ``vgg16`` weights). ``"narrow"``: 1/4 of the
#: widths, a 3x3 fc6 and BatchNorm: trains in minutes on a laptop CPU (the notebooks' default).
BACKBONES = {
    "vgg16": VGGConfig(),
    "narrow": VGGConfig(widths=(16, 32, 64, 128, 128), fc_channels=256, fc6_kernel=3, batch_norm=True,
                        dropout=0.1),
}


def resolve_backbone(backbone: str | VGGConfig | dict) -> VGGConfig:
    if isinstance(backbone, VGGConfig):
        return backbone
    if isinstance(backbone, dict):
        return VGGConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in backbone.items()})
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}: choose one of {sorted(BACKBONES)} or pass a VGGConfig")
    return BACKBONES[backbone]


def _vgg_stage(in_channels: int, out_channels: int, num_convs: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers += conv_bn_relu(in_channels if i == 0 else out_channels, out_channels, batch_norm=batch_norm)
    layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))  # halves the size, odd sizes rounded up
    return nn.Sequential(*layers)


def _classifier(in_channels: int, cfg: VGGConfig) -> nn.Sequential:
    """fc6 (a kxk convolution, size kept) and fc7 (a 1x1 convolution), each with ReLU and dropout."""
    k = cfg.fc6_kernel
    return nn.Sequential(
        *conv_bn_relu(in_channels, cfg.fc_channels, k, padding=k // 2, batch_norm=cfg.batch_norm),  # fc6
        nn.Dropout(cfg.dropout),
        *conv_bn_relu(cfg.fc_channels, cfg.fc_channels, 1, padding=0, batch_norm=cfg.batch_norm),  # fc7
        nn.Dropout(cfg.dropout),
    )


class FCN(SegmentationModel):
    """FCN-32s, FCN-16s or FCN-8s on a VGG-style backbone.

    Args:
        num_classes: classes to score (channels of the logits).
        variant: ``"32s"``, ``"16s"`` or ``"8s"``: the stride of the last score map before the final upsampling
            (FCN-16s/8s add pool4/pool3 scores through short-cuts).
        in_channels: channels of the input images.
        backbone: ``"narrow"`` (the notebooks' CPU-sized default), ``"vgg16"`` (the paper's widths), a
            :class:`VGGConfig` or its dict.

    >>> model = FCN(num_classes=5, variant="8s")
    >>> model(torch.zeros(2, 3, 65, 47)).shape  # any size from 32 up, odd sizes included
    torch.Size([2, 5, 65, 47])
    >>> {name: tuple(f.shape[-2:]) for name, f in model.features(torch.zeros(1, 3, 65, 47)).items()}
    {'pool3': (9, 6), 'pool4': (5, 3), 'pool5': (3, 2)}
    """

    named_by = ("variant",)  # config["name"] is "fcn8s", ...
    #: the backbone's stages by the name of the pooling that ends them
    STAGES = ("pool1", "pool2", "pool3", "pool4", "pool5")

    def __init__(self, num_classes: int, variant: str = "8s", in_channels: int = 3, *,
                 backbone: str | VGGConfig | dict = "narrow"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        cfg = resolve_backbone(backbone)
        if len(cfg.widths) != 5 or len(cfg.convs_per_stage) != 5:
            raise ValueError(f"an FCN backbone has 5 stages (pool1..pool5), got widths {cfg.widths} and "
                             f"convs_per_stage {cfg.convs_per_stage}")
        self.num_classes, self.variant, self.in_channels = num_classes, variant, in_channels

        stages, c_in = OrderedDict(), in_channels
        for i, (width, convs) in enumerate(zip(cfg.widths, cfg.convs_per_stage, strict=True), start=1):
            stages[f"stage{i}"] = _vgg_stage(c_in, width, convs, cfg.batch_norm)  # output: pool{i}
            c_in = width
        self.backbone = nn.Sequential(stages)
        self.classifier = _classifier(c_in, cfg)  # fc6, fc7
        self.score_fr = nn.Conv2d(cfg.fc_channels, num_classes, 1)  # class scores at stride 32
        self.fuse = ShortCut()
        if variant in ("16s", "8s"):
            self.score_pool4 = _zero_conv1x1(cfg.widths[3], num_classes)
            self.up_pool5 = TransposedConvUpsample(num_classes, 2)  # learnable, bilinear init
        if variant == "8s":
            self.score_pool3 = _zero_conv1x1(cfg.widths[2], num_classes)
            self.up_pool4 = TransposedConvUpsample(num_classes, 2)
        self.upsample = TransposedConvUpsample(num_classes, self.output_stride, learnable=False)  # fixed bilinear

    @property
    def model_name(self) -> str:
        return f"fcn{self.variant}"

    def min_input_size(self) -> int:
        return 32  # one cell of pool5

    def deepest_path(self) -> nn.Sequential:
        return nn.Sequential(self.backbone, self.classifier, self.score_fr)

    @property
    def output_stride(self) -> int:
        """Input pixels per cell of the score map that is upsampled last: 32, 16 or 8."""
        return int(self.variant[:-1])

    def features(self, x: torch.Tensor, names: tuple[str, ...] = ("pool3", "pool4", "pool5")) -> dict:
        """The backbone's features by name (``STAGES``), as torchvision's ``IntermediateLayerGetter`` returns
        them: ``pool{i}`` is ``(B, C_i, ceil(H / 2**i), ceil(W / 2**i))``."""
        self.check_input(x)
        return self._features(x, names)

    def _features(self, x: torch.Tensor, names: tuple[str, ...]) -> dict:
        unknown = set(names) - set(self.STAGES)
        if unknown:
            raise ValueError(f"unknown FCN features {sorted(unknown)}: choose from {self.STAGES}")
        features = {}
        for name, stage in zip(self.STAGES, self.backbone, strict=True):
            x = stage(x)
            if name in names:
                features[name] = x
            if len(features) == len(names):
                break
        return features

    def coarse_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The fused class scores before the final upsampling: ``(B, K, ceil(H/s), ceil(W/s))``."""
        self.check_input(x)
        return self._coarse_scores(x)

    def _coarse_scores(self, x: torch.Tensor) -> torch.Tensor:
        pools = self._features(x, ("pool3", "pool4", "pool5"))  # strides 8, 16, 32
        score = self.score_fr(self.classifier(pools["pool5"]))  # (B, K, H/32, W/32)
        if self.variant in ("16s", "8s"):
            score = self.fuse(self.up_pool5(score), self.score_pool4(pools["pool4"]))  # (B, K, H/16, W/16)
        if self.variant == "8s":
            score = self.fuse(self.up_pool4(score), self.score_pool3(pools["pool3"]))  # (B, K, H/8, W/8)
        return score

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self._coarse_scores(x))  # (B, K, >= H, >= W): forward crops

    @classmethod
    def from_vgg16(cls, vgg: nn.Module | dict | str | Path, num_classes: int, variant: str = "8s") -> FCN:
        """An FCN with the paper's VGG16 widths whose backbone, fc6 and fc7 come from a VGG16.

        ``vgg`` is a torchvision ``vgg16`` model, its ``state_dict``, or the path of a local file
        holding that state dict. Nothing is downloaded. With ``num_classes=1000`` the ImageNet
        classifier's fc8 becomes the score layer, so the FCN scores at the centre of a 224x224 image
        equal the classifier's logits.
        """
        state = _load_state_dict(vgg)
        model = cls(num_classes, variant, backbone="vgg16")
        feature_keys = sorted({k.rsplit(".", 1)[0] for k in state if k.startswith("features.")},
                              key=lambda k: int(k.split(".")[1]))
        convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
        if len(feature_keys) != len(convs):
            raise ValueError(f"expected a VGG16 state dict with {len(convs)} convolutions in 'features', "
                             f"found {len(feature_keys)}: pass torchvision.models.vgg16 weights (not vgg16_bn)")
        with torch.no_grad():
            for key, conv in zip(feature_keys, convs, strict=True):
                conv.weight.copy_(state[f"{key}.weight"])
                conv.bias.copy_(state[f"{key}.bias"])
            classifier = nn.Sequential(*(nn.Linear(state[f"classifier.{i}.weight"].shape[1],
                                                   state[f"classifier.{i}.weight"].shape[0]) for i in (0, 3, 6)))
            classifier.load_state_dict({f"{j}.{p}": state[f"classifier.{i}.{p}"]
                                        for j, i in enumerate((0, 3, 6)) for p in ("weight", "bias")})
            fc6, fc7, fc8 = (m for m in convolutionalize(classifier, feature_size=7) if isinstance(m, nn.Conv2d))
            targets = [m for m in model.classifier if isinstance(m, nn.Conv2d)]
            sources = [fc6, fc7]
            if num_classes == 1000:
                targets.append(model.score_fr)
                sources.append(fc8)
            for target, source in zip(targets, sources, strict=True):
                target.weight.copy_(source.weight)
                target.bias.copy_(source.bias)
        return model


def _zero_conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 1x1 score layer that starts at zero, so FCN-16s/8s start out as FCN-32s (as in the paper)."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _load_state_dict(source: nn.Module | dict | str | Path) -> dict:
    if isinstance(source, nn.Module):
        return source.state_dict()
    if isinstance(source, dict):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no VGG16 weights at {path}: save them once with "
                                "torch.save(torchvision.models.vgg16(weights=...).state_dict(), path) on a "
                                "machine with internet access, then pass that local file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file
        raise ValueError(f"{path} is not a readable PyTorch state dict ({error}); save it again with "
                         "torch.save(model.state_dict(), path)") from error


def convolutionalize(classifier: nn.Sequential, *, feature_size: int = 7) -> nn.Sequential:
    """Turn a classifier head of ``Linear`` layers into the equivalent convolutions.

    The first ``Linear`` reads a flattened ``C x feature_size x feature_size`` feature map, so it
    becomes a ``feature_size x feature_size`` convolution with the same weights reshaped; every later
    ``Linear`` becomes a 1x1 convolution. Other layers (ReLU, Dropout) are kept. On a feature map of
    exactly ``feature_size`` the result has one output position, equal to the classifier's output;
    on a larger map it slides the classifier over the image and returns a map of scores.
    """
    layers: list[nn.Module] = []
    first = True
    for layer in classifier:
        if not isinstance(layer, nn.Linear):
            layers.append(layer)
            continue
        out_features, in_features = layer.weight.shape
        kernel = feature_size if first else 1
        if in_features % (kernel * kernel):
            raise ValueError(f"the first Linear layer reads {in_features} features, which is not "
                             f"C x {kernel} x {kernel}: pass the feature_size of the map it flattens")
        conv = nn.Conv2d(in_features // (kernel * kernel), out_features, kernel, bias=layer.bias is not None)
        with torch.no_grad():
            conv.weight.copy_(layer.weight.reshape(conv.weight.shape))  # (out, C*k*k) -> (out, C, k, k)
            if layer.bias is not None:
                conv.bias.copy_(layer.bias)
        layers.append(conv)
        first = False
    if first:
        raise ValueError("the classifier has no Linear layer to convolutionalise")
    return nn.Sequential(*layers)


@register_model("fcn32s")
def fcn32s(*, num_classes: int, in_channels: int = 3, backbone: str | VGGConfig | dict = "narrow") -> FCN:
    """FCN-32s: scores at stride 32, upsampled 32x in one step."""
    return FCN(num_classes, "32s", in_channels, backbone=backbone)


@register_model("fcn16s")
def fcn16s(*, num_classes: int, in_channels: int = 3, backbone: str | VGGConfig | dict = "narrow") -> FCN:
    """FCN-16s: stride-32 scores upsampled 2x, summed with pool4 scores (short-cut), upsampled 16x."""
    return FCN(num_classes, "16s", in_channels, backbone=backbone)


@register_model("fcn8s")
def fcn8s(*, num_classes: int, in_channels: int = 3, backbone: str | VGGConfig | dict = "narrow") -> FCN:
    """FCN-8s: FCN-16s plus a short-cut from pool3 scores, upsampled 8x."""
    return FCN(num_classes, "8s", in_channels, backbone=backbone)
