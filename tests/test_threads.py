"""The thread choice (`seglab.threads`): affinity and cgroup quota read correctly, and said in `seglab info`."""

import os

import pytest
import torch

from seglab.cli import main
from seglab.threads import cgroup_cpu_quota, limit_threads, thread_choice, usable_cpus


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("files, quota", [
    ({"cpu.max": "150000 100000\n"}, 1.5),                                        # cgroup v2, 1.5 CPUs
    ({"cpu.max": "max 100000\n"}, None),                                          # v2, no limit
    ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),    # v1, no limit
    ({}, None),                                                                    # no cgroup files
    ({"cpu.max": "garbage"}, None),
])
def test_cgroup_quota_is_read_in_both_versions(tmp_path, files, quota):
    for name, text in files.items():
        write(tmp_path, name, text)
    assert cgroup_cpu_quota(tmp_path) == quota


def test_usable_cpus_is_lowered_by_affinity_and_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert usable_cpus(tmp_path) == (4, "16 CPUs on the machine, the affinity allows 4")
    write(tmp_path, "cpu.max", "250000 100000")
    assert usable_cpus(tmp_path) == (2, "16 CPUs on the machine, the affinity allows 4, the cgroup quota is 2.5 CPUs")
    write(tmp_path, "cpu.max", "20000 100000")  # a fifth of a CPU still gets one thread
    assert usable_cpus(tmp_path)[0] == 1


def test_omp_num_threads_wins_and_limit_threads_never_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert thread_choice(tmp_path) == (3, "OMP_NUM_THREADS=3")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert limit_threads() == 1  # a lower count set by the user stays
    finally:
        torch.set_num_threads(before)


def test_seglab_info_says_the_threads_and_why(capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert main(["info"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("seglab threads"))
    assert "for training and evaluation" in line and "CPUs on the machine" in line
