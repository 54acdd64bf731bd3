"""Notebook 00's self-test: the questions are consistent and the numeric answers are what seglab computes."""

import pytest
import torchvision

from seglab.arithmetic import LayerGeometry, conv_output_size, receptive_field, transposed_conv_output_size
from seglab.models import unet_output_size
from seglab.notebook.questions import PREPARATION_QUESTIONS
from seglab.notebook.quiz import Quiz


def test_questions_are_well_formed():
    assert len(PREPARATION_QUESTIONS) >= 10
    for q in PREPARATION_QUESTIONS:
        assert q.prompt.endswith("?") and q.explanation
        if not q.numeric:
            assert 0 <= q.answer < len(q.options) and len(set(q.options)) == len(q.options)


def test_numeric_answers_match_the_library():
    answers = {q.prompt: q.answer for q in PREPARATION_QUESTIONS if q.numeric}
    computed = [conv_output_size(224, 7, 2, 3), receptive_field(torchvision.models.vgg16().features).jump,
                transposed_conv_output_size(16, 4, 2, 1), unet_output_size(572), LayerGeometry(3, dilation=2).span]
    assert sorted(answers.values()) == sorted(computed)


def test_quiz_feedback_and_score(capsys):
    quiz = Quiz(PREPARATION_QUESTIONS)
    first = PREPARATION_QUESTIONS[0]
    assert quiz.answer(1, chr(ord("a") + first.answer)) is None  # a letter works too; nothing echoed after it
    assert quiz.responses[1] and "✔" in capsys.readouterr().out
    wrong = (first.answer + 1) % len(first.options)
    quiz.answer(1, wrong)
    out = capsys.readouterr().out
    assert not quiz.responses[1] and "✘" in out and first.explanation in out
    numeric = next(n for n, q in enumerate(PREPARATION_QUESTIONS, 1) if q.numeric)
    quiz.answer(numeric, str(PREPARATION_QUESTIONS[numeric - 1].answer))
    assert quiz.responses[numeric] and quiz.score() == (1, len(PREPARATION_QUESTIONS))
    assert "2 answered" in quiz.score_line()
    with pytest.raises(ValueError, match="questions 1 to"):
        quiz.answer(0, 1)


def test_a_response_the_question_cannot_take_is_refused_not_marked_wrong(capsys):
    quiz = Quiz(PREPARATION_QUESTIONS)
    numeric = next(n for n, q in enumerate(PREPARATION_QUESTIONS, 1) if q.numeric)
    choice = next(n for n, q in enumerate(PREPARATION_QUESTIONS, 1) if not q.numeric)
    options = len(PREPARATION_QUESTIONS[choice - 1].options)
    with pytest.raises(ValueError, match=f"question {numeric} asks for a number"):
        quiz.answer(numeric, "b")
    with pytest.raises(ValueError, match=f"question {choice} has the options a, b"):
        quiz.answer(choice, chr(ord("a") + options))  # one letter past the last option
    with pytest.raises(ValueError, match="has the options"):
        quiz.answer(choice, True)
    assert quiz.responses == {} and "the answer is" not in capsys.readouterr().out  # nothing revealed


def test_quiz_prints_the_questions_without_jupyter(capsys):
    Quiz(PREPARATION_QUESTIONS).show()
    out = capsys.readouterr().out
    assert out.count("?") >= len(PREPARATION_QUESTIONS) and "a) " in out


def test_quiz_in_a_kernel_shows_widgets_with_the_questions_as_text():
    """In Jupyter the quiz is widgets; a front end that cannot draw them (nbconvert, a saved notebook
    on GitHub) shows every question as text instead of a widget's repr."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from seglab.notebook.questions import PREPARATION_QUESTIONS\nfrom seglab.notebook.quiz import Quiz\n"
        "Quiz(PREPARATION_QUESTIONS).show()")])
    NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    (output,) = notebook.cells[0].outputs
    assert "application/vnd.jupyter.widget-view+json" in output.data
    text = output.data["text/plain"]
    assert text.startswith("1. [") and f"{len(PREPARATION_QUESTIONS)}. [" in text and "quiz.answer(" in text
