"""Quizzes with immediate feedback and a running score (notebook 00's preparation questions)."""

from __future__ import annotations

from seglab.notebook.widgets import interactive

__all__ = ["Quiz"]


class Quiz:
    """Questions with immediate feedback and a running score.

    ``quiz.show()`` displays one widget per question (radio buttons or a number box, a *Check*
    button, feedback with an explanation) in Jupyter; ``quiz.answer(number, response)`` is the plain
    function behind it, which also works headless. ``quiz.score()`` returns (right, total).
    """

    def __init__(self, questions):
        self.questions = tuple(questions)
        self.responses: dict[int, bool] = {}
        self._score_label = None

    def answer(self, number: int, response) -> None:
        """Answer question ``number`` (1-based) with an option's letter (``"b"``), its index from 0 (``1``)
        or, for a numeric question, a number; prints the feedback (``quiz.responses[number]``: right or not).

        A response the question cannot take (a letter for a numeric question, an option that does not exist)
        is refused with the forms it takes, and counts as no answer."""
        if not 1 <= number <= len(self.questions):
            raise ValueError(f"there are questions 1 to {len(self.questions)}, not {number}")
        question = self.questions[number - 1]
        letters = "".join(chr(ord("a") + i) for i in range(len(question.options or ())))
        if question.numeric:
            try:
                float(response)
            except (TypeError, ValueError):
                raise ValueError(f"question {number} asks for a number, got {response!r}: answer with "
                                 f"quiz.answer({number}, <a number>)") from None
        else:
            if isinstance(response, str) and len(response.strip()) == 1:
                response = ord(response.strip().lower()) - ord("a")  # "b" -> option 1
            if isinstance(response, bool) or not isinstance(response, int) or not 0 <= response < len(letters):
                raise ValueError(f"question {number} has the options {', '.join(letters)}: answer with one of "
                                 f"those letters (or its index from 0)")
        correct = question.is_correct(response)
        self.responses[number] = correct
        right = (f"{question.answer:g}" if question.numeric else
                 f"{chr(ord('a') + int(question.answer))}) {question.options[int(question.answer)]}")
        print(("✔ right. " if correct else f"✘ not quite: the answer is {right}. ") + question.explanation)
        self._update_score()

    def score(self) -> tuple[int, int]:
        return sum(self.responses.values()), len(self.questions)

    def score_line(self) -> str:
        """``score: right / total (answered)``."""
        right, total = self.score()
        answered = len(self.responses)
        return f"score: {right} / {total} ({answered} answered)"

    def questions_text(self) -> str:
        """Every question with its lettered options, as plain text."""
        lines = []
        for number, question in enumerate(self.questions, start=1):
            lines.append(f"{number}. [{question.topic}] {question.prompt}")
            lines += [f"     {chr(ord('a') + index)}) {option}" for index, option in enumerate(question.options)]
        return "\n".join(lines)

    def print_questions(self) -> None:
        print(self.questions_text())

    def _update_score(self) -> None:
        if self._score_label is not None:
            self._score_label.value = self.score_line()

    def show(self) -> None:
        """The interactive quiz in Jupyter; elsewhere the questions as text (answer with ``answer``)."""
        if not interactive():
            self.print_questions()
            return
        import ipywidgets as w
        from IPython.display import display

        boxes = []
        for number, question in enumerate(self.questions, start=1):
            prompt = w.HTML(f"<b>{number}. {question.prompt}</b> <i>({question.topic})</i>")
            if question.numeric:
                field = w.FloatText(description="answer:")
            else:
                field = w.RadioButtons(options=[(f"{chr(ord('a') + i)}) {o}", i)
                                                for i, o in enumerate(question.options)],
                                       value=None, layout=w.Layout(width="auto"))
            button = w.Button(description="Check", button_style="primary")
            feedback = w.Output()

            def check(_button, number=number, field=field, feedback=feedback):
                feedback.clear_output()
                with feedback:
                    if field.value is None:
                        print("choose an answer first")
                    else:
                        try:
                            self.answer(number, field.value)
                        except ValueError as error:  # e.g. a word typed for a number
                            print(error)

            button.on_click(check)
            boxes.append(w.VBox([prompt, field, button, feedback]))
        self._score_label = w.HTML(self.score_line())
        bundle = w.VBox([*boxes, self._score_label])._repr_mimebundle_()
        # Where widgets cannot be drawn (a saved notebook on GitHub, nbconvert), the questions as text.
        bundle["text/plain"] = self.questions_text() + "\n\nAnswer with quiz.answer(number, letter or number)."
        display(bundle, raw=True)
