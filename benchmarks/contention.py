"""Training throughput when other programs share the cores, before and after seglab's thread policy.

Each measurement is a fresh Python process that imports torch first (as the notebooks do), then trains
one model of the default recipe (`seglab.training.recipes.Recipe`: 64 px synthetic images, batch 8) with `fit`
for a fixed time, and reports the images/s of that time (the tuner's trial steps included). Scenarios:

- alone: nothing else runs;
- beside a second training process: a second notebook training a U-Net with seglab (same policy);
- beside one / two busy loops: pure-Python `while True` processes (a browser tab, a spinning kernel);
- one core by affinity: the process may run on one CPU only (`taskset -c 0`, a batch system's binding).

"before" is `SEGLAB_THREAD_POLICY=torch` (PyTorch's own thread count, what seglab did before);
"after" is the default (`adaptive`, see `seglab/training/threads.py`). Targets, as ratios within one run on a
2-core CPU: beside a second training process >= 0.4 of the idle throughput for every model; idle
throughput after >= 0.95 of before (medians of `--repeats` alternated idle runs: this shared VM
varies by +-20 % between runs).

    python benchmarks/contention.py [--models fcn8s unet] [--seconds 25] [--scenarios ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table

SCENARIOS = ("alone", "beside a second training process", "beside one busy loop", "beside two busy loops",
             "one core (affinity)")
POLICIES = {"before": "torch", "after": "adaptive"}

# One training process: trains `model` for `seconds` (or until killed) and prints JSON with its images/s.
TRAINER = r"""
import json, sys, time
import torch  # first, as in the notebooks: the OpenMP runtime starts before seglab can say anything
from seglab.training.recipes import Recipe, make_datasets, make_model
from seglab.training.fit import fit, make_loader

model_name, seconds, cpus, images = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
if cpus != "all":
    import os
    os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
recipe = Recipe() if images == "recipe" else Recipe(n_train=int(images))
train_set, _ = make_datasets(recipe)
for i in range(len(train_set)):
    train_set[i]  # made once (the data set keeps them): data time is data_speed.py's subject
model = make_model(model_name, recipe, in_channels=train_set.in_channels, num_classes=train_set.num_classes)
loader = make_loader(train_set, recipe.batch_size, train=True, device="cpu", seed=0)


class Timed:
    # the recipe's batches, epoch after epoch, until the time is up
    def __len__(self):
        return 10**6

    def __iter__(self):
        deadline = time.perf_counter() + seconds
        while True:
            for batch in loader:
                if time.perf_counter() >= deadline:
                    return
                yield batch


print("ready", flush=True)
history = fit(model, Timed(), epochs=1, lr=recipe.lr, device="cpu", progress=False, scheduler=None)
print(json.dumps({"images_per_second": history["images_per_second"][0], "threads": history["threads"][0]}),
      flush=True)
"""

BUSY_LOOP = "while True: pass"


def start(code: str, *args: str, policy: str) -> subprocess.Popen:
    env = {**os.environ, "SEGLAB_THREAD_POLICY": policy}
    env.pop("OMP_NUM_THREADS", None)
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True)


def measure(model: str, scenario: str, policy: str, seconds: float, images: str) -> dict:
    others = []
    try:
        if scenario == "beside a second training process":
            other = start(TRAINER, "unet", "1e9", "all", images, policy=policy)
            assert other.stdout.readline().strip() == "ready"
            others.append(other)
            time.sleep(3)  # it is training now
        elif scenario.startswith("beside"):
            others += [start(BUSY_LOOP, policy=policy) for _ in range(1 if "one busy" in scenario else 2)]
        cpus = "0" if scenario == "one core (affinity)" else "all"
        trainer = start(TRAINER, model, str(seconds), cpus, images, policy=policy)
        output, _ = trainer.communicate(timeout=seconds * 20 + 300)
        return json.loads(output.strip().splitlines()[-1])
    finally:
        for other in others:
            other.kill()
            other.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fcn8s", "unet"])
    parser.add_argument("--seconds", type=float, default=25.0, help="training time per measurement")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements of 'alone', before and after alternated; the median is the idle reference")
    parser.add_argument("--images", default="recipe", help="training images (default: the recipe's 1,000)")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS, metavar="SCENARIO")
    args = parser.parse_args()
    print(f"machine: {machine()}; {args.seconds:g} s of training per measurement\n")
    rows, ratios = [], {}
    for model in args.models:
        for scenario in args.scenarios:
            row = [model, scenario]
            repeats = args.repeats if scenario == "alone" else 1  # the reference: before/after alternated
            results = {label: [] for label in POLICIES}
            for _ in range(repeats):
                for label, policy in POLICIES.items():
                    results[label].append(measure(model, scenario, policy, args.seconds, args.images))
            for label in POLICIES:
                result = sorted(results[label], key=lambda r: r["images_per_second"])[len(results[label]) // 2]
                ratios[model, scenario, label] = result["images_per_second"]
                alone = ratios.get((model, "alone", label))
                row += [f"{result['images_per_second']:.1f}", f"{result['images_per_second'] / alone:.2f}"
                        if alone else "-", result["threads"]]
            rows.append(row)
            print(table(["model", "scenario", "before img/s", "of idle", "threads", "after img/s", "of idle",
                         "threads"], rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(["model", "scenario", "before img/s", "before / idle", "threads at end", "after img/s",
                 "after / idle", "threads at end"], rows))
    print()
    for model in args.models:
        if "alone" not in args.scenarios:
            break
        second = (model, "beside a second training process", "after")
        if second in ratios:
            share = ratios[second] / ratios[model, "alone", "after"]
            print(f"{'PASS' if share >= 0.4 else 'FAIL'}  {model}: beside a second training process {share:.2f} "
                  "of idle (>= 0.4)")
        idle = ratios[model, "alone", "after"] / ratios[model, "alone", "before"]
        print(f"{'PASS' if idle >= 0.95 else 'FAIL'}  {model}: idle throughput after / before {idle:.2f} (>= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
