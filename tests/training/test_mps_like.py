"""Apple's MPS has no float64: ``fit`` and ``evaluate`` must never put a float64 tensor on the device.

There is no Mac here. The CPU stands in for the device, under a ``TorchDispatchMode`` that refuses every
operator that receives or produces a float64 tensor, as MPS refuses them. On the CPU a tensor "on the
device" and one "on the host" are the same kind of tensor, so the mode cannot tell them apart: it refuses
float64 in *every* torch tensor, which is stricter than MPS (that would allow float64 tensors on the CPU).
What needs float64 (the loss summed over a data set, the metrics from the confusion matrix) is therefore
computed on host data outside torch, in Python floats and NumPy after ``.cpu()``: the mode does not see it,
and on a Mac it is on the host by construction. The old code (a float64 loss sum made on the device,
``matrix.double()`` before ``.cpu()``) is refused by the mode, as the first test shows.
"""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.data import DataLoader, TensorDataset

from seglab.metrics import ConfusionMatrix
from seglab.models import UNet
from seglab.training.evaluation import evaluate
from seglab.training.fit import fit, seed_everything


class Float64Refused(RuntimeError):
    pass


class NoFloat64(TorchDispatchMode):
    """Raise, as MPS does, when an operator receives, is asked for, or produces a float64 tensor."""

    def __init__(self):
        super().__init__()
        self.operators = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.operators += 1
        if kwargs.get("dtype") == torch.float64 or any(
                isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in tree_leaves((args, kwargs))):
            raise Float64Refused(f"{func}: MPS has no float64")
        out = func(*args, **kwargs)
        if any(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in tree_leaves(out)):
            raise Float64Refused(f"{func} made a float64 tensor: MPS has no float64")
        return out


def test_the_mode_refuses_what_the_old_code_did():
    with NoFloat64(), pytest.raises(Float64Refused):
        torch.zeros((), dtype=torch.float64)  # the old loss sum of evaluate
    matrix = torch.ones(2, 2, dtype=torch.int64)
    with NoFloat64(), pytest.raises(Float64Refused):
        matrix.double()  # the old ConfusionMatrix.compute, before .cpu()
    with NoFloat64() as mode:
        (torch.ones(3) * 0.5 + 1.5).sum().item()  # Python floats are fine: they are no float64 tensors
    assert mode.operators >= 3


def _data(n, seed):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 16, 16, generator=generator)
    masks = torch.randint(0, 3, (n, 16, 16), generator=generator)
    masks[:, :2] = 255  # some ignored pixels
    return TensorDataset(images, masks)


def test_fit_and_evaluate_never_use_float64_on_the_device():
    seed_everything(0)
    model = UNet(1, 3, depth=1, base_channels=4)
    train = DataLoader(_data(4, 0), batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    val = DataLoader(_data(3, 1), batch_size=2)
    with NoFloat64() as mode:
        history = fit(model, train, val, epochs=1, device="cpu", progress=False)
        result = evaluate(model, val, device="cpu")
    assert mode.operators > 100  # the mode saw the training and evaluation
    assert len(history) == 1 and math.isfinite(history.last["val_loss"]) and math.isfinite(history.last["train_miou"])
    assert result["loss"] == pytest.approx(history.last["val_loss"])
    # the same figures as the loss and metrics computed directly in float64, outside the mode
    with torch.no_grad():
        model.eval()
        images, masks = val.dataset.tensors
        logits = model(images)
        expected = torch.nn.functional.cross_entropy(logits.double(), masks, ignore_index=255)
        matrix = ConfusionMatrix(3)
        matrix.update(logits, masks)
    assert result["loss"] == pytest.approx(float(expected), rel=1e-5)
    assert result["miou"] == pytest.approx(matrix.compute()["miou"])
    assert all(isinstance(result[key], float) for key in ("loss", "pixel_accuracy", "miou", "mean_dice"))


def test_the_metrics_do_their_float64_math_on_the_host():
    matrix = ConfusionMatrix(3)
    matrix.update(torch.tensor([[0, 1, 2, 2]]), torch.tensor([[0, 1, 1, 255]]))
    with NoFloat64():
        result = matrix.compute()
    assert result["pixel_accuracy"] == pytest.approx(2 / 3)
    assert result["iou"] == pytest.approx([1.0, 0.5, 0.0]) and result["miou"] == pytest.approx(0.5)
    assert result["matrix"].dtype == torch.int64
