"""pytest settings shared by the unit tests and nbval (the notebook kernels inherit this environment)."""

import os


def pytest_configure(config):
    os.environ["SEGLAB_QUICK"] = "1"  # notebooks shrink their training runs; no cell is skipped
    os.environ.setdefault("MPLBACKEND", "Agg")
