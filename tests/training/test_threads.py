"""The thread choice (`seglab.training.threads`): affinity and cgroup quota read correctly, and said in
`seglab info`."""

import os
import time

import pytest
import torch

from seglab.cli import main
from seglab.training.threads import cgroup_cpu_quota, limit_threads, thread_choice, usable_cpus


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


def test_omp_num_threads_wins_and_limit_threads_never_raises_the_users_count(tmp_path, monkeypatch):
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


# --- the adaptive policy: a ThreadTuner driven by made-up step times (no timing in the tests) -------------

class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    """Each test starts with no earlier choice of seglab's and leaves PyTorch's count as it found it."""
    monkeypatch.setattr("seglab.training.threads._set_by_seglab", None)
    monkeypatch.setattr("seglab.training.threads._last_tuned", None)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def train(tuner, clock, seconds_per_image, steps, images=8):
    """``steps`` training steps whose time depends on the thread count in use, as ``fit`` reports them."""
    for _ in range(steps):
        seconds = seconds_per_image[torch.get_num_threads()] * images
        clock.now += seconds
        tuner.step_done(seconds, images)


IDLE = {2: 0.010, 1: 0.017}  # two threads faster: nothing else runs
SHARED = {2: 0.060, 1: 0.020}  # two threads spin-wait for each other beside another process


def test_candidate_counts_halve_down_to_one():
    from seglab.training.threads import candidate_counts

    assert candidate_counts(16) == [16, 8, 4, 2, 1]
    assert candidate_counts(6) == [6, 3, 1]
    assert candidate_counts(1) == [1]


def test_tuner_keeps_all_threads_on_an_idle_machine_and_measures_less_often(restore_threads):
    from seglab.training.threads import ThreadTuner

    clock = FakeClock()
    tuner = ThreadTuner(2, clock=clock, interval=10, longest=60)
    train(tuner, clock, IDLE, 2 + 8)  # warm-up, then four steps with each count
    assert tuner.choice == 2 and torch.get_num_threads() == 2
    assert tuner.decisions[0][1] == pytest.approx(IDLE)
    train(tuner, clock, IDLE, 2000)  # 160 s: trials after 20, 40, 60, 60 ... s
    assert all(choice == 2 for choice, _ in tuner.decisions)
    assert tuner.interval == 60
    assert 3 <= len(tuner.decisions) <= 6  # each trial costs 3 slower steps: rare once the choice holds


def test_tuner_drops_to_one_thread_when_the_cores_are_shared_and_comes_back(restore_threads):
    from seglab.training.threads import ThreadTuner

    clock = FakeClock()
    tuner = ThreadTuner(2, clock=clock, interval=10)
    train(tuner, clock, IDLE, 2 + 8 + 20)
    assert tuner.choice == 2
    decisions = len(tuner.decisions)
    train(tuner, clock, SHARED, 4 + 8)  # another process starts: the step time changes, measured at once
    assert len(tuner.decisions) == decisions + 1, "a changed step time starts a trial before the interval ends"
    assert tuner.choice == 1 and torch.get_num_threads() == 1
    train(tuner, clock, IDLE, 3000)  # the other process ended: a later trial finds two threads faster again
    assert tuner.choice == 2 and torch.get_num_threads() == 2


def test_a_count_far_slower_than_the_best_costs_one_step_per_trial(restore_threads):
    from seglab.training.threads import ThreadTuner

    spinning = {2: 0.400, 1: 0.020}  # beside two busy loops a step with two threads can take seconds
    clock = FakeClock()
    tuner = ThreadTuner(2, clock=clock, interval=10, longest=10)
    used = []
    for _ in range(400):
        used.append(torch.get_num_threads())
        train(tuner, clock, spinning, 1)
    assert used[:2] == [1, 1], "the warm-up runs with one thread"
    assert all(choice == 1 for choice, _ in tuner.decisions) and len(tuner.decisions) >= 3
    assert used.count(2) == len(tuner.decisions), "one step with two threads per trial, not a block of four"
    assert used.count(2) / len(used) < 0.05


def test_tuner_is_used_only_for_cpu_training_under_the_adaptive_policy(monkeypatch, restore_threads):
    from seglab.training.threads import ThreadTuner

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr("seglab.training.threads.cgroup_cpu_quota", lambda root="": None)
    torch.set_num_threads(4)
    assert ThreadTuner.for_training(torch.device("cpu")).candidates == [1, 2, 4]  # fewest first
    assert ThreadTuner.for_training(torch.device("cuda")) is None  # a GPU's speed does not depend on them
    monkeypatch.setenv("SEGLAB_THREAD_POLICY", "fixed")
    assert ThreadTuner.for_training(torch.device("cpu")) is None
    monkeypatch.setenv("SEGLAB_THREAD_POLICY", "adaptive")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user chose: fixed
    assert ThreadTuner.for_training(torch.device("cpu")) is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)  # one CPU: nothing to choose
    assert ThreadTuner.for_training(torch.device("cpu")) is None


def test_policy_names_are_checked_and_torch_leaves_the_count(monkeypatch, restore_threads):
    from seglab.training.threads import thread_policy

    monkeypatch.setenv("SEGLAB_THREAD_POLICY", "fast")
    with pytest.raises(ValueError, match="SEGLAB_THREAD_POLICY='fast' is not a thread policy: use one of adaptive"):
        thread_policy()
    monkeypatch.setenv("SEGLAB_THREAD_POLICY", "torch")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    torch.set_num_threads(2)
    assert limit_threads() == 2 and "SEGLAB_THREAD_POLICY=torch" in thread_choice()[1]


def test_fit_records_the_threads_and_restores_the_count(monkeypatch, restore_threads):
    from torch.utils.data import DataLoader, TensorDataset

    from seglab.training.fit import fit

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr("seglab.training.threads.cgroup_cpu_quota", lambda root="": None)
    torch.set_num_threads(2)
    model = torch.nn.Conv2d(1, 3, 3, padding=1)
    data = TensorDataset(torch.randn(48, 1, 8, 8), torch.randint(0, 3, (48, 8, 8)))
    history = fit(model, DataLoader(data, batch_size=2), epochs=1, num_classes=3, device="cpu", progress=False)
    assert history["threads"][0] in (1, 2)  # 24 steps: warm-up and one trial of both counts
    assert torch.get_num_threads() == 2


def test_seglab_info_says_the_adaptive_policy(capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SEGLAB_THREAD_POLICY", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr("seglab.training.threads.cgroup_cpu_quota", lambda root="": None)
    assert main(["info"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("seglab threads"))
    assert "4 for training and evaluation (4 CPUs on the machine; while training, fewer when they are faster" in line
    assert "SEGLAB_THREAD_POLICY=fixed to keep 4" in line


def test_evaluation_right_after_training_uses_the_tuned_count(monkeypatch):
    from seglab.training import threads
    from seglab.training.threads import ThreadTuner

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr("seglab.training.threads.cgroup_cpu_quota", lambda root="": None)
    clock = FakeClock()
    tuner = ThreadTuner(2, clock=clock)
    train(tuner, clock, SHARED, 2 + 8)
    threads.set_threads(2)  # fit restores the count it started with
    assert limit_threads() == 1, "an evaluation right after training keeps the count training found fast"
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + threads.RECENT_SECONDS + 1)
    assert limit_threads() == 2, "a decision minutes old no longer binds (the load may have changed)"
    torch.set_num_threads(1)  # the user's own lower count is kept
    assert limit_threads() == 1
