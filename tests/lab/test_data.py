"""Data: synthetic shapes, nuclei, torchvision adapters on tiny fake copies, and the figures."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from seglab.data import (
    CityscapesSegmentation,
    NucleiDataset,
    PetSegmentation,
    SyntheticShapes,
    VOCSegmentation,
    instance_boundaries,
    load_nuclei,
)
from seglab.notebook.viz import colorize, overlay, show_predictions

# ------------------------------------------------------------------ synthetic


def test_synthetic_is_a_pure_function_of_seed_and_index():
    data = SyntheticShapes(50, size=48, seed=7)
    first = [data[i] for i in (3, 10, 42)]
    again = [SyntheticShapes(50, size=48, seed=7)[i] for i in (42, 10, 3)][::-1]  # another order
    for (a_img, a_mask), (b_img, b_mask) in zip(first, again, strict=True):
        assert torch.equal(a_img, b_img) and torch.equal(a_mask, b_mask)
    assert not torch.equal(data[3][0], SyntheticShapes(50, size=48, seed=8)[3][0])


def test_synthetic_is_the_same_in_worker_processes():
    data = SyntheticShapes(8, size=32, seed=1)
    direct = torch.stack([data[i][1] for i in range(8)])
    loaded = torch.cat([m for _, m in DataLoader(data, batch_size=3, num_workers=2)])
    assert torch.equal(direct, loaded)


def test_synthetic_has_every_class_and_types():
    data = SyntheticShapes(40, size=64)
    image, mask = data[0]
    assert image.shape == (1, 64, 64) and image.dtype == torch.float32 and mask.dtype == torch.int64
    counts = torch.bincount(torch.stack([data[i][1] for i in range(40)]).flatten(), minlength=5)
    assert (counts > 0).all() and len(counts) == data.num_classes == len(data.class_names) == len(data.palette)
    # thin curves and small spots are rare pixels: the class imbalance the lesson is about
    assert counts[3] < counts[1] and counts[4] < counts[2]


def test_synthetic_intensity_threshold_fails():
    """No intensity threshold separates objects from background (shape is what tells them apart)."""
    data = SyntheticShapes(30, size=64)
    images = torch.stack([data[i][0][0] for i in range(30)])
    foreground = torch.stack([data[i][1] for i in range(30)]) > 0
    best = 0.0
    for threshold in torch.linspace(float(images.min()), float(images.max()), 60):
        for predicted in (images > threshold, images < threshold):
            iou = (predicted & foreground).sum() / (predicted | foreground).sum()
            best = max(best, float(iou))
    assert best < 0.5


def test_synthetic_knobs():
    data = SyntheticShapes(20, size=48, spots=(0, 0), curves=(0, 0), noise=0.0)
    masks = torch.stack([data[i][1] for i in range(20)])
    assert not ((masks == 3) | (masks == 4)).any()
    with pytest.raises(ValueError, match="size >= 16"):
        SyntheticShapes(5, size=8)
    with pytest.raises(IndexError):
        data[20]


# ------------------------------------------------------------------ nuclei


def test_nuclei_split_by_region_without_overlap():
    image, _ = load_nuclei()
    train, val = NucleiDataset("train", n=4), NucleiDataset("val")
    cut = train.image.shape[1]
    assert cut + val.image.shape[1] == image.shape[1]
    np.testing.assert_array_equal(train.image, image[:, :cut])
    np.testing.assert_array_equal(val.image, image[:, cut:])
    assert len(val) == (512 // 64) * (val.image.shape[1] // 64)


def test_nuclei_boundary_class_separates_touching_nuclei():
    _, instances = load_nuclei()
    boundary = instance_boundaries(instances)
    interior = (instances > 0) & ~boundary
    # 4-adjacent interior pixels always belong to the same nucleus
    for a, b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                 ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
        both = interior[a] & interior[b]
        assert (instances[a][both] == instances[b][both]).all()
    touching = (instances[:, 1:] != instances[:, :-1]) & (instances[:, 1:] > 0) & (instances[:, :-1] > 0)
    assert touching.sum() > 0  # the image does have touching nuclei
    data = NucleiDataset("val", labels="3class")
    assert set(np.unique(data.mask)) == {0, 1, 2}
    assert set(np.unique(NucleiDataset("val", labels="binary").mask)) == {0, 1}


def test_nuclei_augmentation_is_joint():
    plain = NucleiDataset("train", n=12, augment=False, seed=3)
    augmented = NucleiDataset("train", n=12, augment=True, seed=3)
    for i in range(12):
        (img, mask), (aug_img, aug_mask) = plain[i], augmented[i]
        matches = []
        for flip in (False, True):
            for turns in range(4):
                f_img = img.flip(-1) if flip else img
                f_mask = mask.flip(-1) if flip else mask
                matches.append(torch.equal(f_img.rot90(turns, (-2, -1)), aug_img)
                               and torch.equal(f_mask.rot90(turns, (-2, -1)), aug_mask))
        assert any(matches)


def test_nuclei_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="image.png.*Expected layout"):
        NucleiDataset("train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        NucleiDataset("test")


# ------------------------------------------------------------------ torchvision adapters on fake copies


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _rgb(rng, h, w):
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def fake_voc(tmp_path):
    rng = np.random.default_rng(0)
    base = tmp_path / "VOCdevkit" / "VOC2012"
    names = ["2007_000001", "2007_000002"]
    for name in names:
        _save(base / "JPEGImages" / f"{name}.jpg", _rgb(rng, 40, 56))
        labels = rng.choice([0, 5, 20, 255], (40, 56)).astype(np.uint8)
        _save(base / "SegmentationClass" / f"{name}.png", labels, "L")
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(names) + "\n")
    return tmp_path


@pytest.fixture
def fake_pet(tmp_path):
    rng = np.random.default_rng(1)
    base = tmp_path / "oxford-iiit-pet"
    lines = []
    for i, name in enumerate(["Abyssinian_1", "beagle_2"]):
        _save(base / "images" / f"{name}.jpg", _rgb(rng, 50, 36))
        _save(base / "annotations" / "trimaps" / f"{name}.png", rng.choice([1, 2, 3], (50, 36)).astype(np.uint8), "L")
        lines.append(f"{name} {i + 1} {i + 1} 1")
    (base / "annotations" / "trainval.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.fixture
def fake_cityscapes(tmp_path):
    rng = np.random.default_rng(2)
    for split in ("train", "val"):
        stem = "aachen_000000_000019"
        _save(tmp_path / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png", _rgb(rng, 32, 64))
        ids = rng.choice([0, 7, 8, 26, 33], (32, 64)).astype(np.uint8)
        _save(tmp_path / "gtFine" / split / "aachen" / f"{stem}_gtFine_labelIds.png", ids, "L")
    return tmp_path


def _check_sample(image, mask, size, allowed):
    assert image.shape == (3, size, size) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert mask.shape == (size, size) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= set(allowed)  # nearest resizing never invents labels


def test_voc_adapter(fake_voc):
    data = VOCSegmentation(fake_voc, "train", size=32)
    assert len(data) == 2 and data.num_classes == 21
    _check_sample(*data[0], 32, {0, 5, 20, 255})


def test_pet_adapter_maps_trimaps(fake_pet):
    data = PetSegmentation(fake_pet, "trainval", size=24)
    _check_sample(*data[1], 24, {0, 1, 255})
    from torchvision.transforms import v2

    identity = PetSegmentation(fake_pet, "trainval", transforms=v2.Identity())
    trimap = np.array(Image.open(fake_pet / "oxford-iiit-pet/annotations/trimaps/Abyssinian_1.png"))
    expected = np.select([trimap == 1, trimap == 2], [1, 0], 255)
    np.testing.assert_array_equal(identity[0][1].numpy(), expected)


def test_cityscapes_adapter_maps_train_ids(fake_cityscapes):
    data = CityscapesSegmentation(fake_cityscapes, "val", size=16)
    assert data.num_classes == 19 and data.class_names[0] == "road"
    _check_sample(*data[0], 16, {0, 1, 13, 18, 255})  # road, sidewalk, car, bicycle, ignored


@pytest.mark.parametrize("adapter, hint", [(VOCSegmentation, "VOCdevkit/VOC2012/JPEGImages"),
                                           (PetSegmentation, "oxford-iiit-pet/images"),
                                           (CityscapesSegmentation, "leftImg8bit/train")])
def test_adapters_explain_a_missing_folder(adapter, hint, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"Expected layout:(.|\\n)*{hint}(.|\\n)*never downloads"):
        adapter(tmp_path / "nothing")


# ------------------------------------------------------------------ figures


def test_colorize_and_overlay():
    palette = ((0, 0, 0), (255, 0, 0))
    mask = torch.tensor([[0, 1], [255, 1]])
    rgb = colorize(mask, palette)
    assert rgb.shape == (2, 2, 3) and tuple(rgb[0, 1]) == (255, 0, 0) and tuple(rgb[1, 0]) == (255, 255, 255)
    with pytest.raises(ValueError, match="mask values"):
        colorize(torch.tensor([[2]]), palette)
    blended = overlay(torch.zeros(1, 2, 2), mask, palette)
    assert blended.shape == (2, 2, 3) and blended[0, 0].sum() == 0 and blended[0, 1, 0] > 0


def test_show_predictions_draws_a_gallery():
    import matplotlib

    matplotlib.use("Agg")
    data = SyntheticShapes(4, size=32)
    images, masks = zip(*[data[i] for i in range(4)], strict=True)
    fig = show_predictions(images, masks, {"a": torch.stack(masks), "b": torch.stack(masks)},
                           palette=data.palette, class_names=data.class_names, title="look at the curves")
    assert len(fig.axes) == 4 * 4
    assert fig.get_suptitle() == "look at the curves"
    assert [ax.get_ylabel() for ax in fig.axes[::4]] == ["image", "ground truth", "a", "b"]


def test_weight_map_equals_a_brute_force_computation_on_random_layouts():
    """seglab's weight map (distances within each object's reach) against the check's brute force."""
    import random

    from seglab.checks.unet import random_layout, reference_weight_map
    from seglab.data import unet_weight_map

    rng = random.Random(0)
    for _ in range(25):
        instances = random_layout(rng, rng.randint(6, 40), rng.randint(6, 40), rng.randint(0, 7))
        w0, sigma = rng.choice([5.0, 10.0]), rng.uniform(1.0, 6.0)
        w_c, term = reference_weight_map(instances, w0, sigma)
        assert torch.allclose(unet_weight_map(instances, w0=w0, sigma=sigma).double(), w_c + term, atol=1e-4)


def test_weight_map_is_high_in_the_gap_between_touching_objects():
    from seglab.data import unet_weight_map

    instances = torch.zeros(20, 21, dtype=torch.long)
    instances[5:15, 2:10], instances[5:15, 11:19] = 1, 2  # a one-pixel gap at column 10
    weights = unet_weight_map(instances, class_weights=None)
    assert weights[10, 10] > 9 > weights[0, 0] > 1  # the gap almost w0 + 1; a far corner little more than 1
    assert (weights[instances > 0] == 1).all()  # no separation term on the objects
    with pytest.raises(ValueError, match="integer map"):
        unet_weight_map(instances.float())


def test_nuclei_weight_map_turns_with_the_crop():
    train = NucleiDataset("train", n=6, weight_map=True)
    nucleus_weights = set()
    for index in range(6):
        _, mask, weights = train[index]
        assert weights.shape == mask.shape and weights.dtype == torch.float32
        nucleus_weights |= set(weights[mask > 0].tolist())  # w_c alone: the term is on background pixels
    assert len(nucleus_weights) == 1  # the same everywhere: weights flipped and turned with the mask


def test_synthetic_images_are_kept_identical_and_callers_cannot_change_them():
    from seglab.data import SyntheticShapes

    kept, fresh = SyntheticShapes(6, seed=4), SyntheticShapes(6, seed=4, cache=False)
    first = kept[2]
    first[0].add_(1.0)  # a caller's in-place edit of a returned image
    first[1].zero_()
    again = kept[2]  # made once, now from the kept copy
    assert all(torch.equal(a, b) for a, b in zip(again, fresh[2], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(kept[-4], fresh[2], strict=True))  # negative index, same image
    assert len(kept._made) == 1 and fresh._made is None
    assert SyntheticShapes(10**6, size=64)._made is None  # more than CACHE_BYTES: made anew every time
