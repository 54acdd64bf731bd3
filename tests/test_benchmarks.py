"""The benchmark scripts run (tiny sizes: this checks that they work, not their targets)."""

import subprocess
import sys

import pytest

from tests.support import ROOT

BENCHMARKS = ROOT / "benchmarks"


@pytest.mark.parametrize("script, args, expect", [
    ("time_to_miou.py", ["--epochs", "1", "--n-train", "16", "--models", "fcn32s", "unet"], "mIoU"),
    ("throughput.py", ["--seconds", "0.2", "--batch-size", "2", "--size", "32"], "fraction of peak"),
    ("overhead.py", ["--images", "16", "--repeats", "1", "--epochs", "1"], "fit() / minimal loop"),
    ("metrics_speed.py", ["--batches", "2", "--repeats", "1"], "same mIoU"),
    ("data_speed.py", ["--images", "20", "--models", "fcn8s", "--n-train", "16"], "data <= 5 %"),
    ("contention.py", ["--models", "fcn8s", "--seconds", "1", "--images", "16", "--scenarios", "alone",
                       "--repeats", "1"],
     "idle throughput"),
    ("notebook_times.py", ["--notebooks", "00"], "Run All s"),
    ("grading.py", ["--count", "2", "--timeout", "5"], "identical to one by one"),
])
def test_benchmark_script_runs(script, args, expect):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert expect in result.stdout
