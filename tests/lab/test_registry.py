"""The model registry: every registered model rebuilds from its config (checkpoints too), the command line
offers the same names, and every model's receptive field is right or refused with a reason."""

import pytest
import torch
from torch import nn

from seglab.arithmetic import measured_receptive_field, receptive_field
from seglab.models import MODELS, UNet, build_model, register_model, trainable_models
from seglab.models.base import SegmentationModel
from seglab.training.checkpoints import load_model, save_checkpoint

TINY_BACKBONE = {"widths": (4, 4, 8, 8, 8), "convs_per_stage": (1, 1, 1, 1, 1), "fc_channels": 8, "fc6_kernel": 3,
                 "batch_norm": True, "dropout": 0.0}
SMALL = {"unet": {"depth": 2, "base_channels": 4}, "hrnet_lite": {"width": 4},
         **{name: {"backbone": TINY_BACKBONE} for name in ("fcn32s", "fcn16s", "fcn8s", "dilated_fcn")}}


def small_model(name: str) -> SegmentationModel:
    """A small instance of any registered model (the multi-scale wrappers around a small U-Net)."""
    if name.startswith("multiscale"):
        return build_model(name, base=small_model("unet"))
    return build_model(name, num_classes=3, in_channels=1, **SMALL.get(name, {}))


def test_every_model_is_registered_and_tested():
    assert set(MODELS) == {"fcn32s", "fcn16s", "fcn8s", "unet", "dilated_fcn", "hrnet_lite", "multiscale_average",
                           "multiscale_attention"}, "a new model: give it a small size in SMALL"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_rebuilds_every_model_and_its_checkpoint(name, tmp_path):
    torch.manual_seed(0)
    model = small_model(name).eval()
    assert model.config["name"] == name
    clone = build_model(**model.config)
    assert clone.config == model.config and type(clone) is type(model)
    save_checkpoint(tmp_path / "model.pt", model=model, epoch=1)
    loaded, state = load_model(tmp_path / "model.pt")
    assert state["config"] == model.config
    x = torch.randn(1, 1, 40, 36)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model(x))


def test_the_command_line_offers_the_trainable_models():
    from seglab.cli import build_parser

    parser = build_parser()
    for name in trainable_models():
        assert parser.parse_args(["train", "--model", name]).model == name
    for name in set(MODELS) - set(trainable_models()):
        with pytest.raises(SystemExit):  # argparse: "invalid choice"
            parser.parse_args(["train", "--model", name])
    assert set(trainable_models()) == set(MODELS) - {"multiscale_average", "multiscale_attention"}  # need a base


def test_the_outermost_constructor_is_recorded_and_a_new_model_registers():
    class WideUNet(UNet):  # inherits UNet's constructor: its arguments are recorded all the same
        model_name = "wide_unet"

    @register_model("wide_unet")
    def wide_unet(*, num_classes: int, in_channels: int = 3, base_channels: int = 8) -> WideUNet:
        return WideUNet(in_channels, num_classes, depth=2, base_channels=base_channels)

    try:
        model = wide_unet(num_classes=2)
        assert model.config["base_channels"] == 8 and model.config["depth"] == 2
        with pytest.raises(ValueError, match="'wide_unet' is taken"):
            register_model("wide_unet")(wide_unet)
    finally:
        del MODELS["wide_unet"]


def test_a_model_needs_logits():
    class Unfinished(SegmentationModel):
        model_name = "unfinished"

        def __init__(self):
            super().__init__()
            self.in_channels, self.num_classes = 1, 2

    with pytest.raises(NotImplementedError, match="Unfinished must implement logits"):
        Unfinished()(torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_receptive_field_of_every_model_is_measured_or_refused_with_the_reason(name):
    model = small_model(name)
    try:
        path = model.deepest_path()
    except ValueError as error:  # HRNet, the multi-scale models: no single chain of layers
        assert "measured_receptive_field" in str(error)
        with pytest.raises(ValueError, match="no single chain"):
            receptive_field(model)
        assert measured_receptive_field(model) > 5  # what the model really sees (HRNet was said to see 5 px)
        return
    assert isinstance(path, nn.Sequential)
    assert receptive_field(model).size == measured_receptive_field(path, in_channels=1,
                                                                   width=model.min_input_size())
