"""Which cells grading runs (`seglab.course.needed`): answers, checks, and what they depend on only."""

import pytest

from seglab.course.needed import needed_cells
from seglab.course.plan import plan_submission
from seglab.course.probes import grading_notebook
from seglab.course.submissions import parse_submission
from tests.support import ROOT


def run(*sources, targets, trusted=()):
    needed = needed_cells(list(sources), set(targets), trusted=set(trusted))
    return None if needed is None else sorted(needed)


def test_figures_and_training_after_imports_are_skipped():
    assert run("import torch\nimport matplotlib.pyplot as plt",           # 0: read by the answer
               "fig, ax = plt.subplots()\nax.plot([1, 2])\nplt.show()",    # 1: a figure
               "model = train()\nhistory = model.history",                 # 2: training
               "def answer(x):\n    return torch.relu(x)",                 # 3: the answer
               "probe(lambda: (answer,))",                                 # 4: the check
               targets=[3, 4]) == [0, 3, 4]


def test_a_helper_cell_the_answer_calls_is_run():
    assert run("import torch",
               "SCALE = 2\ndef helper(x):\n    return x * SCALE",
               "import matplotlib.pyplot as plt\nplt.plot([1])",
               "def answer(x):\n    return helper(torch.tensor(x)) + 1",
               "probe(lambda: (answer,))", targets=[3, 4]) == [0, 1, 3, 4]


def test_every_cell_that_rebinds_or_changes_a_name_before_its_reader_runs():
    assert run("size = 64",
               "size = 128  # a figure cell reusing the name",
               "weights = [0, 0]",
               "weights[0] = 1",
               "weights.append(3)",
               "def answer():\n    return size, weights",
               "plt.show()", targets=[5]) == [0, 1, 2, 3, 4, 5]


def test_names_local_to_a_function_do_not_pull_in_cells():
    assert run("model = train()",
               "x = 3",
               "def answer(model):\n    x = model + 1\n    return [x for x in range(x)]",
               targets=[2]) == [2]


def test_global_statement_binds_and_a_module_method_call_does_not():
    assert run("import torch\ntorch.manual_seed(0)",
               "torch.manual_seed(1)\nfigure = draw()",
               "def setup():\n    global table\n    table = {}\nsetup()",
               "def answer():\n    return torch.zeros(len(table))",
               targets=[3]) == [0, 2, 3]


def test_cells_after_the_last_target_never_run():
    assert run("def answer():\n    return 1", "probe(lambda: (answer,))", "answer = None", targets=[0, 1]) == [0, 1]


@pytest.mark.parametrize("source", ["exec('answer = 1')", "globals()['answer'] = 1", "from math import *",
                                    "%run helpers.py", "%time answer = 1", "%%prun\nanswer = 1", "def answer(:"])
def test_code_the_analysis_cannot_follow_runs_everything(source):
    assert run("import torch", source, "probe(lambda: (answer,))", targets=[2]) is None


def test_everyday_magics_and_shell_commands_bind_nothing_and_a_body_is_code():
    assert run("%load_ext autoreload\n%autoreload 2\n!pip3 --version\n%cd .\nimport torch",
               "%%capture\ndef answer():\n    return torch.ones(1)",
               "%%time\nfigure = draw()",
               "%%writefile helper.py\nanswer = None",
               "files = !ls\nprobe(lambda: (answer,))", targets=[4]) == [0, 1, 4]


def test_harmless_magics_and_the_setup_cell():
    assert run("get_ipython().input_transformers_cleanup.append(f)",  # the kit's setup cell: trusted
               "%matplotlib inline\n%pip install tqdm\nimport torch",
               "plt.show()",
               "def answer():\n    return torch.ones(1)", targets=[3], trusted=[0]) == [0, 1, 3]


def test_the_course_notebooks_run_only_imports_answers_and_checks(course):
    """In every released notebook, grading skips the figures, widgets and training runs."""
    for name, graded in course.exercises.items():
        checks = {e.grade_id for e in graded if e.kind == "check"}
        if not checks:
            continue
        cells = parse_submission((ROOT / "notebooks" / name).read_bytes())
        plan = plan_submission(cells, course.releases[name])
        assert all(plan.answers[gid.removeprefix("check_")] for gid in checks), name  # every answer cell found
        notebook, targets, trusted, probes, *_ = grading_notebook(plan, {gid: f"probe({gid!r})" for gid in checks})
        assert set(probes) == checks and len(trusted) == 2, name  # the grader's guard, the setup cell
        run_cells = needed_cells([cell.source for cell in notebook.cells], targets, trusted=trusted)
        assert run_cells is not None, name
        ran = [notebook.cells[i].source for i in sorted(run_cells)]
        assert not any("train_model(" in source or "plt.subplots(" in source for source in ran), name
        assert targets <= run_cells, name
