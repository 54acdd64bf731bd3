"""The code base stays ruff-clean (the linter runs as part of the README's test command)."""

import shutil
import subprocess
import sys

from tests.support import ROOT


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    result = subprocess.run([*command, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
