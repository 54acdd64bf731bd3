"""fit under torchrun: 2 CPU processes with the gloo backend (one thread each, so 2 cores suffice)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from seglab.data import SyntheticShapes
from seglab.train import evaluate, load_model, make_loader

SCRIPT = textwrap.dedent('''
    import json, sys
    from seglab import distributed
    from seglab.data import SyntheticShapes
    from seglab.models import UNet
    from seglab.train import fit, make_loader, seed_everything

    seed_everything(0)
    model = UNet(1, 5, depth=2, base_channels=4)
    train = make_loader(SyntheticShapes(32, size=32), 4, train=True)
    val = make_loader(SyntheticShapes(10, size=32, seed=1), 4, train=False)
    history = fit(model, train, val, epochs=2, device="cpu", checkpoint=sys.argv[1], progress=False)
    if distributed.is_main_process():
        json.dump({"history": history.to_dict(), "world": distributed.world_size()}, open(sys.argv[2], "w"))
''')


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    script, checkpoint, result = folder / "train.py", folder / "model.pt", folder / "result.json"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), str(checkpoint), str(result)], capture_output=True, text=True, env=env,
                         timeout=300, cwd=folder)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return checkpoint, json.loads(result.read_text())


def test_two_processes_train_and_rank_0_writes(ddp_run):
    checkpoint, result = ddp_run
    assert result["world"] == 2
    history = result["history"]["epochs"]
    assert [e["epoch"] for e in history] == [1, 2]
    assert {"train_loss", "train_miou", "val_loss", "val_miou", "val_iou", "images_per_second", "lr"} <= set(history[0])
    assert checkpoint.is_file()


def test_global_validation_metrics_equal_a_single_process_evaluation(ddp_run):
    checkpoint, result = ddp_run
    model, state = load_model(checkpoint)
    single = evaluate(model, make_loader(SyntheticShapes(10, size=32, seed=1), 4, train=False), device="cpu")
    last = result["history"]["epochs"][-1]
    assert state["epoch"] == 2
    assert last["val_miou"] == pytest.approx(single["miou"], rel=1e-6)
    assert last["val_pixel_accuracy"] == pytest.approx(single["pixel_accuracy"], rel=1e-6)
    assert last["val_loss"] == pytest.approx(single["loss"], rel=1e-4)


def test_seglab_train_under_torchrun(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                          "seglab", "train", "--model", "fcn32s", "--epochs", "1", "--n-train", "32", "--n-val", "8",
                          "--size", "32", "--no-progress", "--checkpoint", str(tmp_path / "run.pt")],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("validation after 1 epochs") == 1  # only rank 0 reports
    assert (tmp_path / "run.pt").is_file()
