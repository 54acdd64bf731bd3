"""ConfusionMatrix against torchmetrics (a test-only dependency) and by hand."""

import math

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

from seglab.metrics import ConfusionMatrix, check_labels


@pytest.mark.parametrize("seed", range(5))
def test_matches_torchmetrics_with_ignored_pixels(seed):
    torch.manual_seed(seed)
    k = 6
    ours = ConfusionMatrix(k)
    jaccard = MulticlassJaccardIndex(k, average=None, ignore_index=255)
    miou = MulticlassJaccardIndex(k, average="macro", ignore_index=255)
    accuracy = MulticlassAccuracy(k, average="micro", ignore_index=255)
    f1 = MulticlassF1Score(k, average=None, ignore_index=255)
    for _ in range(3):
        logits = torch.randn(4, k, 9, 11)
        target = torch.randint(0, k, (4, 9, 11))
        target[torch.rand(target.shape) < 0.2] = 255
        ours.update(logits, target)
        for metric in (jaccard, miou, accuracy, f1):
            metric.update(logits, target)
    result = ours.compute()
    as_tensor = lambda values: torch.tensor(values, dtype=torch.float64)  # noqa: E731
    torch.testing.assert_close(as_tensor(result["iou"]), jaccard.compute().double(), rtol=1e-5, atol=1e-6)
    assert result["miou"] == pytest.approx(float(miou.compute()), rel=1e-5)
    assert result["pixel_accuracy"] == pytest.approx(float(accuracy.compute()), rel=1e-5)
    torch.testing.assert_close(as_tensor(result["dice"]), f1.compute().double(), rtol=1e-5, atol=1e-6)


def test_absent_classes_are_nan_and_left_out_of_the_mean():
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([[0, 0, 1, 3]]), torch.tensor([[0, 0, 1, 1]]))
    result = cm.compute()
    assert math.isnan(result["iou"][2])  # class 2: neither in targets nor predictions
    assert result["iou"][3] == 0.0  # class 3: predicted only, counts as 0
    assert result["iou"][:2] == [1.0, 0.5]
    assert result["miou"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    miou = MulticlassJaccardIndex(4, average="macro")
    assert result["miou"] == pytest.approx(float(miou(torch.tensor([[0, 0, 1, 3]]), torch.tensor([[0, 0, 1, 1]]))))


def test_labels_and_logits_agree_and_reset():
    logits = torch.randn(2, 3, 5, 5)
    target = torch.randint(0, 3, (2, 5, 5))
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(logits, target)
    b.update(logits.argmax(1), target)
    assert torch.equal(a.matrix, b.matrix) and a.matrix.sum() == 50
    a.merge(b)
    assert a.matrix.sum() == 100
    a.reset()
    assert a.matrix.sum() == 0


def test_bad_input_is_explained():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) or 255.*\[7\]"):
        cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 7], [1, 255]]]))
    with pytest.raises(ValueError, match="differ in shape.*crop"):
        cm.update(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"logits must be \(B, 3, H, W\)"):
        cm.update(torch.randn(1, 5, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="-1"):
        check_labels(torch.tensor([-1, 0]), 2)
