"""summary() and the seglab command line."""

import shutil
import subprocess
import sys

import pytest

from seglab.arithmetic import receptive_field
from seglab.cli import main
from seglab.models import FCN, UNet
from seglab.summary import summary


def test_summary_of_fcn(capsys):
    model = FCN(5, "8s")
    rows = summary(model, (3, 64, 48))
    printed = capsys.readouterr().out
    assert rows[-1].output_shape == (1, 5, 64, 48) and rows[-1].total_stride == 1
    assert sum(r.parameters for r in rows) == sum(p.numel() for p in model.parameters())
    score_fr = next(r for r in rows if r.name == "score_fr")
    assert score_fr.total_stride == 32 and score_fr.output_shape == (1, 5, 2, 2)
    assert score_fr.receptive_field == receptive_field(model).size
    assert "score_pool3" in printed and "parameters: " in printed


def test_summary_of_unet_shows_skip_merges(capsys):
    model = UNet(3, 2, depth=3, base_channels=8)
    rows = summary(model, 37, print_table=False)
    assert capsys.readouterr().out == ""
    merges = [r for r in rows if r.kind == "Skip"]
    assert [r.output_shape[1] for r in merges] == [64, 32, 16]  # C + C after each concatenation
    bottleneck = [r for r in rows if r.name.startswith("encoder.3")][-1]
    assert bottleneck.total_stride == 8 and bottleneck.receptive_field == receptive_field(model).size
    assert rows[-1].output_shape == (1, 2, 37, 37)
    assert model.training  # summary restores the mode it found


def test_summary_rejects_bad_sizes():
    with pytest.raises(ValueError, match="input_size"):
        summary(UNet(3, 2, depth=2), (1, 2, 3, 4, 5))


def test_cli_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("seglab", "torch", "torchvision", "device (auto)", "torch threads"):
        assert key in out


def test_cli_help_lists_subcommands():
    result = subprocess.run([sys.executable, "-m", "seglab", "--help"], capture_output=True, text=True, check=True)
    assert "info" in result.stdout


def test_console_script_is_installed():
    script = shutil.which("seglab")
    assert script, "the seglab console script is missing: install the package with pip install -e ."
    result = subprocess.run([script, "info"], capture_output=True, text=True, check=True)
    assert "torch" in result.stdout


def test_cli_train_and_evaluate(tmp_path, capsys):
    checkpoint = tmp_path / "fcn.pt"
    code = main(["train", "--data", "synthetic", "--model", "fcn32s", "--epochs", "1", "--n-train", "16",
                 "--n-val", "8", "--size", "32", "--batch-size", "8", "--checkpoint", str(checkpoint),
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and checkpoint.is_file()
    for name in ("background", "blob", "polygon", "curve", "spot", "mean", "pixel accuracy"):
        assert name in out
    assert main(["evaluate", str(checkpoint)]) == 0
    assert "fcn32s after 1 epochs, synthetic" in capsys.readouterr().out


def test_train_options_are_the_recipes_fields_and_amp_reaches_fit(monkeypatch, capsys):
    from dataclasses import fields

    import seglab.training.recipes
    from seglab.cli import _recipe, build_parser
    from seglab.training.recipes import Recipe

    args = build_parser().parse_args(["train", "--val-batch-size", "3", "--weight-map", "--data", "nuclei"])
    assert _recipe(args) == Recipe(val_batch_size=3, weight_map=True, data="nuclei")
    assert _recipe(build_parser().parse_args(["train"])) == Recipe()  # the same defaults, declared once
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    for setting in fields(Recipe):
        assert "--" + setting.name.replace("_", "-") in help_text
        assert f"{setting.name}: {setting.metadata['help']}" in Recipe.__doc__  # the Args: section, same text
    seen = {}

    def fake_fit(model, train_loader, val_loader=None, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(seglab.training.recipes, "fit", fake_fit)
    for option, amp in (("off", False), ("on", True), ("bf16", "bf16"), ("auto", "auto")):
        with pytest.raises(SystemExit):
            main(["train", "--model", "fcn32s", "--n-train", "8", "--n-val", "4", "--size", "32", "--amp", option])
        assert seen["amp"] == amp


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"nope")
    assert main(["evaluate", str(broken)]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


def test_grade_and_entry_test_are_groups_of_nested_commands(capsys):
    """``seglab grade run|manual|merge`` and ``seglab entry-test build|grade`` are parsers of their own: each has
    its own options and help, and a group without its action says which there are."""
    from seglab.cli import build_parser

    for group, actions in (("grade", {"run", "manual", "merge"}), ("entry-test", {"build", "grade"})):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args([group])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "required" in err and all(action in err for action in actions), err
    args = build_parser().parse_args(["grade", "merge", "a.csv", "b.csv", "--out", "all.csv"])
    assert (args.name, args.csvs, args.out) == ("grade merge", ["a.csv", "b.csv"], "all.csv")
    args = build_parser().parse_args(["grade", "run", "merge"])  # a folder called merge is a folder
    assert (args.name, args.submissions) == ("grade run", "merge")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["grade", "manual", "sheet.csv", "--workers", "2"])  # run's option, not manual's
