"""Borrowed answers, however they come: hostile answers that run what the exercise asks to write in another
thread, through an operator the old lists missed, or as a pasted copy of seglab's reference; and the official
solutions, which must keep their full points and never be called copies."""

from __future__ import annotations

import _thread
import ast
import gc
import importlib
import inspect
import io
import os
import queue
import re
import shutil
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

import seglab.arithmetic
import seglab.layers
from seglab.checks import OffLimits, exercise, exercises
from seglab.checks import borrowed as b
from seglab.checks.arithmetic import (
    check_conv_output_size,
    check_pool_output_size,
    check_receptive_field,
    check_transposed_conv_output_size,
)
from seglab.checks.borrowed import copied_reference, references_copied, watch
from seglab.checks.fcn import check_total_stride
from seglab.checks.unet import check_skip_merge, check_unet_sizes
from seglab.checks.upsampling import (
    check_bilinear_kernel,
    check_convolution_matrix,
    check_transposed_conv_by_autograd,
    check_transposed_conv_by_zero_insertion,
)
from tests.support import ROOT, nbgrader

fcn_module = importlib.import_module("seglab.models.fcn")  # (seglab.models.fcn and .unet are also functions)
unet_module = importlib.import_module("seglab.models.unet")
SOLUTIONS = sorted((ROOT / "solutions").glob("0[1-4]_*.ipynb"))
os.environ.setdefault("MPLBACKEND", "Agg")


def quiet(check, *objects, **options):
    with redirect_stdout(io.StringIO()):
        return check(*objects, seed=5, **options)


def borrowed(result, named: str) -> bool:
    return result.points == 0 and "write yourself" in result.message and named in result.message


def conv_size_by_torch(i, k, s=1, p=0, d=1):
    return F.conv2d(torch.zeros(1, 1, i, 1), torch.zeros(1, 1, k, 1), stride=(s, 1), padding=(p, 0),
                    dilation=(d, 1)).shape[2]


def transposed_by_torch(x, w, s, p, op):
    return F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op)


def settled(thread: threading.Thread, timeout: float = 10.0) -> None:
    """Wait until a thread that was just started is blocked (its stack and CPU time stay put for 0.2 s), as
    an earlier cell's thread is by the time a check runs; on a loaded machine ``start()`` returns while the new
    thread is still on its way to its first wait."""
    deadline, last, still = time.monotonic() + timeout, None, 0
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident)
        now = (id(frame), getattr(frame, "f_lasti", None), b._cpu_ns(thread))
        still = still + 1 if now == last else 0
        if still >= 4:
            return
        last = now
        time.sleep(0.05)
    raise AssertionError(f"thread {thread.name} did not settle within {timeout} s")


# ------------------------------------------------------------------ threads


def test_an_operator_in_a_thread_started_during_the_call():
    def conv_output_size(i, k, s=1, p=0, d=1):
        out = []
        thread = threading.Thread(target=lambda: out.append(conv_size_by_torch(i, k, s, p, d)))
        thread.start()
        thread.join()
        return out[0]

    assert borrowed(quiet(check_conv_output_size, conv_output_size, cases=5), "torch (conv)")


def test_seglab_code_in_a_thread_started_during_the_call():
    def receptive_field(layers):
        out = []
        thread = threading.Thread(target=lambda: out.append(seglab.arithmetic.receptive_field(layers)))
        thread.start()
        thread.join()
        return out[0].size, out[0].jump

    assert borrowed(quiet(check_receptive_field, receptive_field, cases=3), "seglab.arithmetic.receptive_field")


def test_a_raw_thread_and_a_thread_inside_a_thread():
    def conv_output_size(i, k, s=1, p=0, d=1):
        done, out = threading.Event(), []

        def inner():
            worker = threading.Thread(target=lambda: out.append(conv_size_by_torch(i, k, s, p, d)))
            worker.start()
            worker.join()
            done.set()

        _thread.start_new_thread(inner, ())
        done.wait(10)
        return out[0]

    assert borrowed(quiet(check_conv_output_size, conv_output_size, cases=3), "torch (conv)")


def test_a_worker_thread_started_before_the_call_fed_through_a_queue():
    jobs: queue.Queue = queue.Queue()

    def worker():  # an earlier cell's worker: idle (blocked on the queue) when the check starts
        while True:
            job, box = jobs.get()
            if job is None:
                return
            box.put(job())

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    settled(thread)
    try:
        def transposed(x, w, s, p, op):
            box: queue.Queue = queue.Queue()
            jobs.put((lambda: transposed_by_torch(x, w, s, p, op), box))
            return box.get()

        result = quiet(check_transposed_conv_by_zero_insertion, transposed, cases=3)
        assert borrowed(result, "a thread besides your answer's own") and thread.name in result.message
    finally:
        jobs.put((None, None))
        thread.join(5)


def test_a_thread_pool_started_before_the_call():
    pool = ThreadPoolExecutor(2)
    pool.submit(lambda: None).result()  # its workers exist, waiting
    try:
        result = quiet(check_conv_output_size, lambda i, k, s=1, p=0, d=1: pool.submit(
            conv_size_by_torch, i, k, s, p, d).result(), cases=3)
        assert borrowed(result, "a thread besides your answer's own")
        # an operator the pool runs for the answer of a layer exercise, too
        result = quiet(check_transposed_conv_by_autograd, lambda y, w, s, p, n: pool.submit(
            F.conv_transpose2d, y, w, stride=s, padding=p, output_padding=n - ((y.shape[-1] - 1) * s - 2 * p
                                                                              + w.shape[-1])).result(), cases=3)
        assert borrowed(result, "a thread besides your answer's own")
    finally:
        pool.shutdown()


def test_idle_threads_and_threads_that_run_nothing_off_limits_are_fine():
    stop = threading.Event()
    idle = threading.Thread(target=stop.wait, daemon=True)  # an earlier cell's thread, waiting all along
    idle.start()
    settled(idle)
    try:
        def conv_output_size(i, k, s=1, p=0, d=1):  # a thread of its own that only does arithmetic
            out = []
            thread = threading.Thread(target=lambda: out.append((i + 2 * p - d * (k - 1) - 1) // s + 1))
            thread.start()
            thread.join()
            return out[0]

        result = quiet(check_conv_output_size, conv_output_size, cases=10)
        assert result.passed, result.message
    finally:
        stop.set()
        idle.join(5)


def test_a_thread_that_outlives_the_call_stops_being_watched():
    release, out = threading.Event(), []

    def later():
        release.wait(10)
        out.append(conv_size_by_torch(5, 3))  # after the watch: not the answer's business

    with watch(exercise("conv_output_size").off_limits) as found:
        thread = threading.Thread(target=later, daemon=True)
        thread.start()
    release.set()
    thread.join(5)
    assert out == [3] and found == []
    assert threading._start_new_thread is _thread.start_new_thread  # the watch put it back


# ------------------------------------------------------------------ operator families


def _unfold_size(i, k, s=1, p=0, d=1):
    return F.unfold(torch.zeros(1, 1, i, 1), (k, 1), dilation=(d, 1), padding=(p, 0), stride=(s, 1)).shape[-1]


def _transposed_by_fold(x, weight, stride, padding, output_padding):
    _batch, c_in, h, w = x.shape
    _, c_out, k, _ = weight.shape
    columns = torch.einsum("bcl,cm->bml", x.flatten(2), weight.reshape(c_in, c_out * k * k))
    size = ((h - 1) * stride - 2 * padding + k + output_padding, (w - 1) * stride - 2 * padding + k + output_padding)
    return F.fold(columns, size, k, padding=padding, stride=stride)


def _matrix_by_transposed_impulses(kernel, n, stride):  # row r of C is the transposed convolution of impulse r
    k = kernel.shape[0]
    o = (n - k) // stride + 1
    impulses = torch.eye(o * o).reshape(o * o, 1, o, o)
    return torch.ops.aten.slow_conv_transpose2d(impulses, kernel[None, None], [k, k], None, [stride, stride]).flatten(1)


HOSTILE_OPS = [
    (check_conv_output_size, (_unfold_size,), "torch (im2col)"),
    (check_conv_output_size, (lambda i, k, s=1, p=0, d=1: torch.ops.aten.convolution(
        torch.zeros(1, 1, i, 1, device="meta"), torch.zeros(1, 1, k, 1, device="meta"), None, [s, 1], [p, 0], [d, 1],
        False, [0, 0], 1).shape[2],), "torch (conv)"),
    (check_conv_output_size, (lambda i, k, s=1, p=0, d=1: torch.zeros(i + 2 * p).unfold(
        0, d * (k - 1) + 1, s).shape[0],), "torch (unfold)"),
    (check_pool_output_size, (lambda i, k, s=None, p=0, ceil_mode=False: F.max_pool3d(
        torch.zeros(1, 1, i, 1, 1), (k, 1, 1), stride=(s or k, 1, 1), padding=(p, 0, 0),
        ceil_mode=ceil_mode).shape[2],), "torch (max_pool3d_with_indices)"),
    (check_pool_output_size, (lambda i, k, s=None, p=0, ceil_mode=False: F.avg_pool1d(
        torch.zeros(1, 1, i), k, stride=s or k, padding=p, ceil_mode=ceil_mode).shape[-1],), "torch (avg_pool2d)"),
    (check_pool_output_size, (lambda i, k, s=None, p=0, ceil_mode=False: F.adaptive_max_pool1d(
        torch.zeros(1, 1, i), max(1, (i + 2 * p - k) // (s or k) + 1)).shape[-1],), "torch (adaptive_max_pool2d)"),
    (check_transposed_conv_output_size, (lambda i, k, s=1, p=0, d=1, output_padding=0:
                                         torch.ops.aten.slow_conv_transpose2d(
                                             torch.zeros(1, 1, i, 1), torch.zeros(1, 1, k, 1), [k, 1], None, [s, 1],
                                             [p, 0], [output_padding, 0], [d, 1]).shape[2],),
     "torch (slow_conv_transpose2d)"),
    (check_receptive_field, (lambda layers: (torch.tensor(1).item() + 0, 1),), "torch ("),  # any operator at all
    (check_unet_sizes, (lambda size, depth: conv_size_by_torch(size, 3), lambda wanted, depth: wanted),
     "torch (conv)"),
    (check_transposed_conv_by_zero_insertion, (lambda x, w, s, p, op: torch.ops.aten.slow_conv_transpose2d.default(
        x, w.transpose(0, 1).contiguous().transpose(0, 1), [w.shape[-2], w.shape[-1]], None, [s, s], [p, p],
        [op, op], [1, 1]),), "torch (slow_conv_transpose2d)"),
    (check_transposed_conv_by_zero_insertion, (lambda x, w, s, p, op: torch.ops.aten.convolution.default(
        x, w, None, [s, s], [p, p], [1, 1], transposed=True, output_padding=[op, op], groups=1),),
     "torch (conv_transpose)"),
    (check_transposed_conv_by_zero_insertion, (_transposed_by_fold,), "torch (col2im)"),
    (check_transposed_conv_by_autograd, (lambda y, w, s, p, n: _transposed_by_fold(
        y, w, s, p, n - ((y.shape[-1] - 1) * s - 2 * p + w.shape[-1])),), "torch (col2im)"),
    (check_convolution_matrix, (_matrix_by_transposed_impulses,), "torch (slow_conv_transpose2d)"),
    (check_bilinear_kernel, (lambda c, k: F.interpolate(torch.zeros(1, 1, 2, 2), scale_factor=2, mode="bicubic"),),
     "torch (upsample_bicubic2d)"),
    (check_bilinear_kernel, (lambda c, k: F.grid_sample(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2),
                                                        align_corners=False),), "torch (grid_sampler_2d)"),
]


@pytest.mark.parametrize("check, objects, named", HOSTILE_OPS, ids=[named for *_, named in HOSTILE_OPS])
def test_every_spelling_of_the_layer_counts(check, objects, named):
    result = quiet(check, *objects, cases=3)
    assert borrowed(result, named), result.message


def test_total_stride_may_not_run_the_module():
    def by_running(module):
        out = module(torch.zeros(1, 3, 96, 96))
        return 96 // out.shape[-1]

    assert borrowed(quiet(check_total_stride, by_running, cases=2), "torch (conv")


def test_the_families_cover_every_aten_operator_of_their_kind():
    names = {name.split(".")[0].removeprefix("aten::") for name in torch._C._dispatch_get_all_op_names()
             if name.startswith("aten::")}
    families = set(b.CONVOLUTION + b.TRANSPOSED_CONVOLUTION + b.CONVOLUTION_BACKWARD + b.UNFOLD + b.FOLD + b.POOLING
                   + b.INTERPOLATION)
    computing = {n for n in names if re.search(r"conv|pool|upsample|grid_sampl|affine_grid|im2col|col2im|unfold", n)
                 and not n.endswith("_out") and not re.search(r"_convert_|reorder_conv|convolution_mode_out", n)}
    computing -= set(b._TRANSPOSABLE)  # told apart as "conv" / "conv_transpose"
    assert computing <= families, sorted(computing - families)
    assert set(b.RUNNING_A_LAYER) == families


def test_every_exercise_names_the_families_of_what_it_asks():
    ops = {ex.id: set(ex.off_limits.ops) for ex in exercises().values()}
    for size in ("conv_output_size", "pool_output_size", "transposed_conv_output_size", "receptive_field",
                 "unet_sizes"):
        assert exercise(size).off_limits.any_op, size
    assert set(b.INTERPOLATION) <= ops["bilinear_kernel"]
    for layer in ("transposed_conv_by_zero_insertion", "convolution_matrix", "transposed_conv_by_autograd"):
        assert set(b.TRANSPOSED_CONVOLUTION + b.FOLD) <= ops[layer], layer
    assert set(b.CONVOLUTION_BACKWARD) <= ops["transposed_conv_by_zero_insertion"]
    assert set(b.RUNNING_A_LAYER) <= ops["total_stride"]


# ------------------------------------------------------------------ the official solutions


def _solutions(path: Path):
    """The notebook's namespace after its first cell and its answers, its answers' sources and its check lines."""
    notebook = nbformat.read(path, as_version=4)
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    namespace: dict = {}
    exec("\n".join(line for line in cells[0].source.splitlines() if not line.startswith("%")), namespace)
    answers, checks = {}, []
    for cell in cells:
        meta = nbgrader(cell)
        if meta.get("solution") and not meta.get("grade"):
            exec(cell.source, namespace)
            answers[meta["grade_id"]] = cell.source
        elif meta.get("grade"):
            checks.append((meta["grade_id"].removeprefix("check_"), cell.source.splitlines()[0]))
    return namespace, answers, checks


@pytest.fixture(scope="module")
def solutions():
    return {path.name: _solutions(path) for path in SOLUTIONS}


def test_every_official_solution_keeps_its_full_points(solutions):
    seen = set()
    for namespace, _, checks in solutions.values():
        for exercise_id, line in checks:
            with redirect_stdout(io.StringIO()):
                result = eval(line, namespace)  # the notebook's own check cell, e.g. check_x(x)
            assert result.passed and result.points == result.max_points, (exercise_id, result.message)
            seen.add(exercise_id)
    assert seen == set(exercises())


def test_no_official_solution_is_called_a_copy(solutions):
    for _, answers, _ in solutions.values():
        for exercise_id, source in answers.items():
            found = references_copied(source, exercise(exercise_id).off_limits)
            assert found == [], (exercise_id, found)
            shares = [b.copy_share(b._tokens(node), reference) for node in ast.walk(ast.parse(source))
                      if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                      for spec in exercise(exercise_id).off_limits.code for _, reference in b._reference_units(spec)]
            assert max(shares, default=0) < 0.6, exercise_id  # measured at most 0.49: well below COPY_SHARE


# ------------------------------------------------------------------ pasted copies of seglab's reference


def disguise(source: str, names: dict[str, str]) -> str:
    """Rename the function and its variables, drop the docstrings and annotations, add comments and blank
    lines and reformat: what a student who pastes seglab's reference into the answer cell would do."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            node.name = names.get(node.name, node.name)
            if isinstance(node, ast.FunctionDef):
                node.returns = None
            if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                node.body = node.body[1:] or [ast.Pass()]
        elif isinstance(node, ast.arg):
            node.arg, node.annotation = names.get(node.arg, node.arg), None
        elif isinstance(node, ast.Name):
            node.id = names.get(node.id, node.id)
    lines = ast.unparse(tree).splitlines()
    return "\n".join(f"{line}  # my step {n}" if line.strip() and not line.rstrip().endswith(":") else line
                     for n, line in enumerate(lines)) + "\n"


def _source(*objects) -> str:
    return "\n\n".join(inspect.getsource(obj) for obj in objects)


COPIES = [
    ("conv_output_size", _source(seglab.arithmetic._require, seglab.arithmetic._check_common,
                                 seglab.arithmetic.conv_output_size),
     {"conv_output_size": "my_size", "span": "width", "i": "n", "k": "kernel", "_require": "ensure",
      "_check_common": "validate", "value": "v"}, "seglab.arithmetic.conv_output_size"),
    ("pool_output_size", _source(seglab.arithmetic.pool_output_size),
     {"pool_output_size": "pool_size", "out": "result", "rounding": "rnd", "span": "w"},
     "seglab.arithmetic.pool_output_size"),
    ("bilinear_kernel", _source(seglab.layers.bilinear_kernel),
     {"bilinear_kernel": "tent_weights", "factor": "f", "center": "mid", "centre": "mid", "og": "grid"},
     "seglab.layers.bilinear_kernel"),
    ("unet_sizes", _source(unet_module.unet_input_size),
     {"unet_input_size": "smallest_tile", "scale": "m", "border": "edge", "bottom": "b"},
     "seglab.models.unet.unet_input_size"),
    ("linear_to_conv", _source(fcn_module.convolutionalize),
     {"convolutionalize": "to_conv", "conv": "c2d", "layers": "parts"}, "seglab.models.fcn.convolutionalize"),
]


@pytest.mark.parametrize("exercise_id, source, names, reference", COPIES, ids=[c[0] for c in COPIES])
def test_a_pasted_and_renamed_reference_is_named(exercise_id, source, names, reference):
    pasted = disguise(source, names)
    assert pasted != source and "# my step" in pasted
    assert copied_reference(pasted, exercise(exercise_id).off_limits) == reference
    # with a few lines changed as well (a message reworded, a statement added)
    lines = pasted.splitlines()
    last = max(n for n, line in enumerate(lines) if line.lstrip().startswith("return"))
    indent = lines[last][:len(lines[last]) - len(lines[last].lstrip())]
    edited = "\n".join([*lines[:last], indent + "checked = True", indent + "assert checked", *lines[last:]])
    assert copied_reference(edited, exercise(exercise_id).off_limits) == reference


def test_a_pasted_copy_still_passes_the_run_time_watch_so_the_grader_needs_the_source_rule():
    namespace: dict = {}
    pasted = disguise(_source(seglab.arithmetic._require, seglab.arithmetic._check_common,
                              seglab.arithmetic.conv_output_size), {"conv_output_size": "mine"})
    exec(pasted, namespace)
    assert quiet(check_conv_output_size, namespace["mine"], cases=5).passed  # invisible at run time ...
    assert copied_reference(pasted, exercise("conv_output_size").off_limits) == "seglab.arithmetic.conv_output_size"


def test_a_pasted_class_is_named():
    pasted = disguise(_source(seglab.layers._align, seglab.layers.Skip), {"Skip": "Merge", "decoder": "a"})
    assert copied_reference(pasted, exercise("skip_merge").off_limits) in ("seglab.layers.Skip", "seglab.layers._align",
                                                                         "seglab.layers.Skip.forward")


def test_copies_are_not_confused_with_honest_code_or_other_references():
    assert copied_reference("def f(i, k, s=1, p=0, d=1):\n    return (i + 2*p - d*(k-1) - 1)//s + 1",
                            exercise("conv_output_size").off_limits) is None
    assert copied_reference("%matplotlib inline\nx = 1", exercise("conv_output_size").off_limits) is None
    assert copied_reference("def broken(:", exercise("conv_output_size").off_limits) is None
    pasted = disguise(_source(seglab.layers.bilinear_kernel), {"bilinear_kernel": "k"})
    assert copied_reference(pasted, exercise("conv_output_size").off_limits) is None  # not this exercise's


# ------------------------------------------------------------------ seglab's modules run from another file


@pytest.fixture
def fresh_registry(monkeypatch):
    """An empty model registry: a copy of seglab.models.unet registers its model again, under a name taken."""
    monkeypatch.setattr(importlib.import_module("seglab.models.registry"), "MODELS", {})


@pytest.fixture
def module_copies(tmp_path, monkeypatch, fresh_registry):
    """``copy(module, name)``: seglab's module copied into the working folder as ``name.py`` and imported, as
    ``shutil.copy(seglab.arithmetic.__file__, "mymath.py"); import mymath`` does in a notebook."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names = []

    def copy(module, name):
        shutil.copy(module.__file__, tmp_path / f"{name}.py")
        names.append(name)
        return importlib.import_module(name)

    yield copy
    for name in names:
        sys.modules.pop(name, None)


@pytest.fixture
def compiled_elsewhere(fresh_registry):
    """``compiled(module, name)``: a module built from seglab's source compiled as ``elsewhere.py`` (registered
    in sys.modules, as its dataclasses need)."""
    names = []

    def compiled(module, name):
        built = types.ModuleType(name)
        sys.modules[name] = built
        names.append(name)
        source = Path(module.__file__).read_text(encoding="utf-8")
        exec(compile(source, "elsewhere.py", "exec"), built.__dict__)
        return built

    yield compiled
    for name in names:
        sys.modules.pop(name, None)


RUN_ELSEWHERE = [  # seglab's module, the function run, its arguments, the exercise, the reference's label
    (seglab.arithmetic, "conv_output_size", (5, 3), "conv_output_size", "seglab.arithmetic.conv_output_size"),
    (seglab.arithmetic, "receptive_field", ([(3, 1, 1, 1), (2, 2, 0, 1)],), "receptive_field",
     "seglab.arithmetic.receptive_field"),
    (unet_module, "unet_input_size", (100, 3), "unet_sizes", "seglab.models.unet.unet_input_size"),
    (seglab.layers, "bilinear_kernel", (2, 4), "bilinear_kernel", "seglab.layers.bilinear_kernel"),
]


def _used(exercise_id, function, *args) -> list[str]:
    with watch(exercise(exercise_id).off_limits) as found:
        function(*args)
    return found


@pytest.mark.parametrize("module, name, args, exercise_id, label", RUN_ELSEWHERE, ids=[r[1] for r in RUN_ELSEWHERE])
def test_a_copy_of_seglabs_module_under_another_name_is_the_reference(module_copies, module, name, args,
                                                                       exercise_id, label):
    copied = module_copies(module, f"my_{name}")
    function = getattr(copied, name)
    assert function.__code__.co_filename != getattr(module, name).__code__.co_filename  # not seglab's own file
    assert _used(exercise_id, function, *args)[0] == label


@pytest.mark.parametrize("module, name, args, exercise_id, label", RUN_ELSEWHERE, ids=[r[1] for r in RUN_ELSEWHERE])
def test_seglabs_source_compiled_as_another_file_is_the_reference(compiled_elsewhere, module, name, args,
                                                                  exercise_id, label):
    function = getattr(compiled_elsewhere(module, f"elsewhere_{name}"), name)
    assert function.__code__.co_filename == "elsewhere.py"
    assert _used(exercise_id, function, *args)[0] == label


def test_a_copied_module_gets_zero_in_the_check_and_its_classes_are_known_too(module_copies):
    mymath = module_copies(seglab.arithmetic, "mymath")
    assert borrowed(quiet(check_conv_output_size, mymath.conv_output_size), "seglab.arithmetic.conv_output_size")
    mylayers = module_copies(seglab.layers, "mylayers")  # a class's methods: Skip.forward calls _align
    result = quiet(check_skip_merge, mylayers.Skip())
    assert borrowed(result, "seglab.layers"), result.message


def test_a_function_of_the_students_own_with_the_references_name_is_not_the_reference():
    namespace: dict = {}
    exec(compile(  # the reference's name, arguments and docstring, the student's own body
        "def conv_output_size(i, k, s=1, p=0, d=1):\n"
        f"    {seglab.arithmetic.conv_output_size.__doc__!r}\n"
        "    return (i + 2 * p - d * (k - 1) - 1) // s + 1\n", "<cell>", "exec"), namespace)
    own = namespace["conv_output_size"]
    assert own.__doc__ == seglab.arithmetic.conv_output_size.__doc__
    assert _used("conv_output_size", own, 5, 3) == []
    assert quiet(check_conv_output_size, own).passed


def test_a_one_line_reference_method_is_known_by_its_place_only():
    """seglab's BilinearUpsample.forward is one line that an honest module may hold word for word: its code alone
    does not make an answer the reference (what it calls, F.interpolate, is off-limits by itself)."""
    namespace: dict = {}
    exec("import torch.nn.functional as F\n"  # (how F is bound changes the bytecode: imported, as in seglab)
         "from torch import nn\n"
         "class Up(nn.Module):\n"
         "    def forward(self, x):\n"
         "        return F.interpolate(x, scale_factor=self.scale_factor, mode=\"bilinear\", align_corners=False)\n",
         namespace)
    forward = namespace["Up"].forward
    assert b._identity(forward.__code__) == b._identity(seglab.layers.BilinearUpsample.forward.__code__)
    with watch(OffLimits(code=("seglab/layers.py:BilinearUpsample.*",))) as found:
        forward(types.SimpleNamespace(scale_factor=2), torch.zeros(1, 1, 2, 2))
    assert found == []


def test_a_code_objects_identity_is_cached_while_it_lives():
    namespace: dict = {}
    exec("def mine(i, k):\n    return i - k + 1\n", namespace)
    code = namespace["mine"].__code__
    ident = id(code)
    assert _used("conv_output_size", namespace["mine"], 5, 3) == []
    assert b._CODE_KEYS[ident][0]() is code and b._code_key(code) == b._CODE_KEYS[ident][1]
    del namespace, code
    gc.collect()
    assert ident not in b._CODE_KEYS  # forgotten with the code object: the cache holds only live code


# ------------------------------------------------------------------ cost


def test_the_watch_costs_little_per_case():
    fn = lambda i, k, s=1, p=0, d=1: (i + 2 * p - d * (k - 1) - 1) // s + 1  # noqa: E731
    start = time.perf_counter()
    assert quiet(check_conv_output_size, fn, cases=300).passed
    assert (time.perf_counter() - start) / 300 < 0.005  # measured about 0.2 ms per case on 2 cores
