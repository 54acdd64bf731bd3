"""fit / evaluate / predict / checkpoints on the CPU, small models and data."""

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from seglab.data import SyntheticShapes
from seglab.models import UNet
from seglab.training.checkpoints import load_checkpoint, load_model, save_checkpoint
from seglab.training.device import DeviceSettings
from seglab.training.evaluation import evaluate, predict
from seglab.training.fit import fit, make_loader, seed_everything
from seglab.training.history import History


def tiny_model(**kwargs):
    seed_everything(0)
    return UNet(1, 5, depth=2, base_channels=4, **kwargs)


@pytest.fixture(scope="module")
def loaders():
    train = make_loader(SyntheticShapes(32, size=32, seed=0), 8, train=True)
    val = make_loader(SyntheticShapes(16, size=32, seed=1), 16, train=False)
    return train, val


def test_fit_learns_and_records_history(loaders):
    model = tiny_model()
    history = fit(model, *loaders, epochs=3, lr=1e-2, progress=False)
    assert len(history) == 3 and history.stop_reason is None
    assert history["epoch"] == [1, 2, 3]
    assert history["train_loss"][-1] < history["train_loss"][0]
    for key in ("train_loss", "train_pixel_accuracy", "train_miou", "val_loss", "val_pixel_accuracy", "val_miou",
                "lr", "images_per_second", "seconds"):
        assert all(isinstance(v, float) and math.isfinite(v) for v in history[key]), key
    assert len(history.last["val_iou"]) == 5
    assert history.class_names == SyntheticShapes.class_names
    import matplotlib

    matplotlib.use("Agg")
    fig = history.plot(title="a run")
    assert len(fig.axes) == 2 and fig.get_suptitle() == "a run"
    assert all(ax.get_title() for ax in fig.axes), "every panel says what to look for"
    ticks = fig.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks), f"epochs are whole numbers, ticks {ticks}"


def test_labels_are_checked_once_per_batch(loaders, monkeypatch):
    import seglab.metrics
    import seglab.training.evaluation
    import seglab.training.fit

    calls = []
    real = seglab.metrics.check_labels

    def counting(target, *args, **kwargs):
        calls.append(target.shape[0])
        return real(target, *args, **kwargs)

    # every place that could check them
    for module in (seglab.training.fit, seglab.training.evaluation, seglab.metrics):
        monkeypatch.setattr(module, "check_labels", counting)
    train, val = loaders
    fit(tiny_model(), train, val, epochs=1, progress=False)
    assert len(calls) == len(train) + len(val)  # one check per training batch and per validation batch


def test_settings_per_device():
    cpu = DeviceSettings.choose("cpu")
    assert cpu.amp_dtype is None and cpu.channels_last and not cpu.grad_scaler
    assert DeviceSettings.choose("cpu", amp=True).amp_dtype == torch.bfloat16  # CPU autocast
    with pytest.raises(ValueError, match="amp must be"):
        DeviceSettings.choose("cpu", amp="int8")


def test_amp_path_runs_with_cpu_autocast(loaders):
    model = tiny_model()
    history = fit(model, *loaders, epochs=1, amp=True, progress=False)
    assert math.isfinite(history.last["train_loss"]) and math.isfinite(history.last["val_miou"])
    assert model.head.weight.dtype == torch.float32  # autocast keeps the weights in fp32


def test_channels_last_gives_the_same_training_as_contiguous():
    results = []
    for channels_last in (True, False):
        model = tiny_model(batch_norm=True)
        loader = make_loader(SyntheticShapes(32, size=32, seed=0), 8, train=True, seed=5)  # same batch order
        fit(model, loader, epochs=1, progress=False, channels_last=channels_last)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-3, atol=1e-4)


def test_evaluate_and_predict(loaders):
    model = tiny_model()
    result = evaluate(model, loaders[1])
    assert {"loss", "pixel_accuracy", "iou", "miou", "dice", "matrix"} <= set(result)
    assert result["matrix"].sum() == 16 * 32 * 32
    image, _ = loaders[1].dataset[0]
    assert predict(model, image).shape == (32, 32)
    assert predict(model, loaders[1].dataset).shape == (16, 32, 32)
    probabilities = predict(model, image[None], probabilities=True)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(1, 32, 32))


def test_valid_padding_model_trains_on_cropped_targets():
    model = UNet(1, 2, depth=1, base_channels=4, padding="valid")
    data = TensorDataset(torch.randn(4, 1, 40, 40), torch.randint(0, 2, (4, 40, 40)))
    history = fit(model, DataLoader(data, batch_size=2), DataLoader(data, batch_size=2), epochs=1, progress=False)
    assert math.isfinite(history.last["val_loss"])


def test_labels_out_of_range_raise_before_the_loss():
    data = TensorDataset(torch.randn(2, 1, 32, 32), torch.full((2, 32, 32), 7))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\) or 255.*\[7\]"):
        fit(tiny_model(), DataLoader(data, batch_size=2), epochs=1, progress=False)


def test_non_finite_loss_restores_the_last_good_weights(loaders):
    model = tiny_model()
    fit(model, loaders[0], epochs=1, progress=False)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(4, 1, 32, 32)
    images[0, 0, 0, 0] = math.nan
    bad = DataLoader(TensorDataset(images, torch.zeros(4, 32, 32, dtype=torch.long)), batch_size=4)
    with pytest.warns(RuntimeWarning, match="loss became nan.*restored"):
        history = fit(model, bad, epochs=2, progress=False)
    assert history.stop_reason == "non-finite loss" and len(history) == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, good[key]), key


class InterruptingLoader:
    """Yields the batches of a loader and presses Ctrl-C in the given epoch."""

    def __init__(self, loader, epoch):
        self.loader, self.epoch, self.calls = loader, epoch, 0
        self.dataset = loader.dataset

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.calls += 1
        for i, batch in enumerate(self.loader):
            if self.calls == self.epoch and i == 1:
                raise KeyboardInterrupt
            yield batch


def test_ctrl_c_stops_cleanly_and_keeps_the_weights(loaders):
    model = tiny_model()
    before = model.head.weight.detach().clone()
    history = fit(model, InterruptingLoader(loaders[0], epoch=2), epochs=5, progress=False)
    assert history.stop_reason == "interrupted" and len(history) == 1
    assert not torch.equal(model.head.weight, before)  # trained weights are kept


def test_checkpoint_and_resume(loaders, tmp_path):
    path = tmp_path / "run" / "unet.pt"
    model = tiny_model()
    fit(model, *loaders, epochs=2, checkpoint=path, progress=False)
    state = load_checkpoint(path)
    assert state["epoch"] == 2 and state["config"]["name"] == "unet" and len(state["history"]["epochs"]) == 2
    assert [p.name for p in path.parent.iterdir()] == ["unet.pt"]  # no temporary files left behind

    resumed = tiny_model()  # fresh weights: resume must load the checkpoint's
    history = fit(resumed, *loaders, epochs=4, checkpoint=path, resume=True, progress=False)
    assert history["epoch"] == [1, 2, 3, 4]
    assert history.epochs[:2] == state["history"]["epochs"]
    assert load_checkpoint(path)["epoch"] == 4

    rebuilt, _ = load_model(path)
    for a, b in zip(rebuilt.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    model = tiny_model()
    save_checkpoint(path, model=model, epoch=1)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model=model, epoch=2)
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_corrupt_or_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(broken)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(ValueError, match="not a seglab checkpoint"):
        load_checkpoint(other)


def test_resuming_from_a_corrupt_checkpoint_leaves_threads_and_memory_format_as_they_were(tmp_path, loaders,
                                                                                            monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("seglab.training.threads.usable_cpus", lambda root="": (2, "test"))
    monkeypatch.setattr("seglab.training.threads._set_by_seglab", None)
    monkeypatch.setattr("seglab.training.threads._last_tuned", None)  # no recent decision of an earlier test's tuner
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the tuner starts with 1 thread while it warms up
    try:
        broken = tmp_path / "broken.pt"
        broken.write_bytes(b"\x80\x02garbage")
        model = tiny_model()
        with pytest.raises(ValueError, match="not a readable checkpoint"):
            fit(model, *loaders, epochs=1, device="cpu", checkpoint=broken, resume=True, progress=False)
        assert torch.get_num_threads() == 2
        weight = next(w for w in model.parameters() if w.ndim == 4 and w.shape[1] > 1 and w.shape[-1] > 1)
        assert weight.is_contiguous()  # not left in channels_last
    finally:
        torch.set_num_threads(before)


def test_history_round_trip():
    history = History([{"epoch": 1, "train_loss": 0.5}], ("a", "b"), "interrupted")
    assert History.from_dict(history.to_dict()) == history


def test_fit_argument_errors(loaders):
    with pytest.raises(ValueError, match="epochs"):
        fit(tiny_model(), loaders[0], epochs=0)
    with pytest.raises(ValueError, match="scheduler"):
        fit(tiny_model(), loaders[0], epochs=1, scheduler="step", progress=False)


def test_fit_with_torch_compile():
    model = UNet(1, 3, depth=1, base_channels=4)
    data = DataLoader(TensorDataset(torch.randn(8, 1, 32, 32), torch.randint(0, 3, (8, 32, 32))), batch_size=4)
    before = model.head.weight.detach().clone()
    history = fit(model, data, data, epochs=1, compile=True, progress=False)
    assert math.isfinite(history.last["val_loss"])
    assert not torch.equal(model.head.weight, before)  # the compiled module trained the model's own weights


def test_ctrl_c_after_resume_names_the_right_epoch(loaders, tmp_path, capsys):
    path = tmp_path / "run.pt"
    fit(tiny_model(), loaders[0], epochs=2, checkpoint=path, progress=False)
    history = fit(tiny_model(), InterruptingLoader(loaders[0], epoch=1), epochs=4, checkpoint=path, resume=True,
                  progress=False)
    assert history.stop_reason == "interrupted" and history["epoch"] == [1, 2]
    assert "stopped in epoch 3" in capsys.readouterr().out


def test_per_pixel_weights_weight_the_loss():
    """Batches (images, masks, weights): Σ w·CE / Σ w. Weights of 0 and 1 equal leaving the 0 pixels out."""
    from seglab.training.fit import _loss

    logits, target = torch.randn(2, 3, 5, 5), torch.randint(0, 3, (2, 5, 5))
    keep = torch.rand(2, 5, 5) < 0.6
    ignored = target.masked_fill(~keep, 255)
    assert torch.allclose(_loss(logits, target, keep.float(), None, 255),
                          torch.nn.functional.cross_entropy(logits, ignored, ignore_index=255))
    assert torch.allclose(_loss(logits, target, torch.full((2, 5, 5), 7.0), None, 255),
                          torch.nn.functional.cross_entropy(logits, target))  # a constant weight changes nothing


def test_fit_trains_with_per_pixel_weights_and_names_a_shape_mismatch():
    images, masks = torch.randn(4, 1, 32, 32), torch.randint(0, 5, (4, 32, 32))
    weighted = TensorDataset(images, masks, torch.rand(4, 32, 32) + 0.5)
    history = fit(tiny_model(), DataLoader(weighted, batch_size=2), DataLoader(weighted, batch_size=2), epochs=1,
                  progress=False)
    assert math.isfinite(history.last["train_loss"]) and math.isfinite(history.last["val_loss"])
    wrong = TensorDataset(images, masks, torch.rand(4, 16, 16))
    with pytest.raises(ValueError, match=r"per-pixel loss weights must have the masks' shape \(2, 32, 32\)"):
        fit(tiny_model(), DataLoader(wrong, batch_size=2), epochs=1, progress=False)


def test_the_recipe_trains_nuclei_with_the_weight_map():
    from seglab.training.recipes import Recipe, make_datasets

    train, val = make_datasets(Recipe(data="nuclei", n_train=4, weight_map=True))
    assert len(train[0]) == 3 and len(val[0]) == 2  # the validation loss is not weighted
    with pytest.raises(ValueError, match='use data="nuclei"'):
        make_datasets(Recipe(weight_map=True))


def test_a_saved_notebook_shows_the_finished_progress_bar():
    """Jupyter keeps a widget's text as first displayed ("0%| | 0/8"): fit replaces it when it is done."""
    import nbformat
    from nbclient import NotebookClient

    code = ("import torch\nfrom torch.utils.data import DataLoader, TensorDataset\nfrom seglab.models import UNet\n"
            "from seglab.training.fit import fit\n"
            "data = TensorDataset(torch.randn(4, 1, 16, 16), torch.randint(0, 2, (4, 16, 16)))\n"
            "history = fit(UNet(1, 2, depth=1, base_channels=2), DataLoader(data, batch_size=2), epochs=2)")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(notebook, kernel_name="python3", timeout=300).execute()
    texts = [o.data["text/plain"] for o in notebook.cells[0].outputs if o.output_type == "display_data"]
    assert len(texts) == 1 and "100%" in texts[0] and "4/4" in texts[0], texts


def test_the_progress_bar_outside_jupyter(capsys):
    """In a terminal (or a log file) fit's bar is tqdm's text bar, on standard error."""
    data = TensorDataset(torch.randn(4, 1, 16, 16), torch.randint(0, 2, (4, 16, 16)))
    fit(UNet(1, 2, depth=1, base_channels=2), DataLoader(data, batch_size=2), epochs=1, progress=True)
    assert "epoch 1/1" in capsys.readouterr().err


def test_the_first_epoch_says_how_long_the_run_takes(capsys):
    """After its first epoch a run says its work, its rate and its time on this machine (times of another
    machine do not transfer); a one-epoch run and a run without progress say nothing."""
    import re

    data = TensorDataset(torch.randn(6, 1, 16, 16), torch.randint(0, 2, (6, 16, 16)))
    fit(UNet(1, 2, depth=1, base_channels=2), DataLoader(data, batch_size=2), epochs=3, progress=True)
    out = capsys.readouterr().out
    assert re.search(r"^epoch 1 took \d+ s \(6 training images at \d+ images/s, then the validation\): the 3 "
                     r"epochs of this run take at most about \d+ s on this machine", out, flags=re.M), out
    for epochs, progress in ((1, True), (3, False)):
        fit(UNet(1, 2, depth=1, base_channels=2), DataLoader(data, batch_size=2), epochs=epochs, progress=progress)
        assert "this machine" not in capsys.readouterr().out


def test_durations_are_stated_in_units_to_plan_with():
    from seglab.training.fit import _duration

    assert [_duration(s) for s in (4.2, 89, 90, 600, 5399, 7200)] == ["4 s", "89 s", "1.5 min", "10.0 min",
                                                                       "90.0 min", "2.0 h"]


def test_training_rate_measures_images_per_second():
    from seglab.training.recipes import Recipe, training_rate

    rate = training_rate("fcn32s", Recipe(batch_size=2), steps=2, device="cpu")
    assert math.isfinite(rate) and rate > 0
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        training_rate(steps=0)


def test_seglab_info_speed_states_the_rate_and_how_to_scale(capsys, monkeypatch):
    import seglab.training.recipes
    from seglab.cli import main

    monkeypatch.setattr(seglab.training.recipes, "training_rate", lambda name, device: 123.4)
    assert main(["info", "--speed"]) == 0
    out = capsys.readouterr().out
    assert "123 images/s (the default U-Net recipe" in out and "R / 123 times as long here" in out
    assert main(["info"]) == 0 and "images/s" not in capsys.readouterr().out
