"""Interactive explorers for the notebooks (ipywidgets), each with a static fallback."""

from __future__ import annotations

__all__ = ["Quiz", "conv_explorer"]


def _interactive() -> bool:
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def conv_explorer(i: int = 5, k: int = 3, s: int = 2, p: int = 1, d: int = 1, transposed: bool = False) -> None:
    """Sliders for input size, kernel, stride, padding, dilation and a transposed mode; redraws the
    grids and prints the output size. Outside a Jupyter kernel it draws one static figure instead."""
    import matplotlib.pyplot as plt

    from seglab.arithmetic import conv_output_size, transposed_conv_output_size
    from seglab.draw import draw_convolution

    def show(i, k, s, p, d, transposed, output_padding):
        try:
            if transposed:
                size = transposed_conv_output_size(i, k, s, p, d, output_padding)
                formula = f"(i−1)·s − 2p + d·(k−1) + output_padding + 1 = {size}"
            else:
                size = conv_output_size(i, k, s, p, d)
                formula = f"⌊(i + 2p − d·(k−1) − 1) / s⌋ + 1 = {size}"
            print(f"output size: {size}    {formula}")
            draw_convolution(i, k, s, p, d, transposed=transposed, output_padding=output_padding)
            plt.show()
        except ValueError as error:
            print(f"not a valid layer: {error}")

    if not _interactive():
        show(i, k, s, p, d, transposed, 0)
        return None

    import ipywidgets as w
    from IPython.display import display

    sliders = {
        "i": w.IntSlider(i, 1, 12, description="input i"),
        "k": w.IntSlider(k, 1, 5, description="kernel k"),
        "s": w.IntSlider(s, 1, 4, description="stride s"),
        "p": w.IntSlider(p, 0, 4, description="padding p"),
        "d": w.IntSlider(d, 1, 3, description="dilation d"),
        "transposed": w.Checkbox(transposed, description="transposed"),
        "output_padding": w.IntSlider(0, 0, 3, description="output_pad"),
    }
    out = w.interactive_output(show, sliders)
    ui = w.HBox([w.VBox(list(sliders.values())[:4]), w.VBox(list(sliders.values())[4:])])
    display(ui, out)
    return None


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

    def answer(self, number: int, response) -> bool:
        """Answer question ``number`` (1-based) with an option's letter (``"b"``), its index from 0 (``1``)
        or, for a numeric question, a number; prints the feedback."""
        if not 1 <= number <= len(self.questions):
            raise ValueError(f"there are questions 1 to {len(self.questions)}, not {number}")
        question = self.questions[number - 1]
        if isinstance(response, str) and not question.numeric and len(response.strip()) == 1:
            response = ord(response.strip().lower()) - ord("a")  # "b" -> option 1
        correct = question.is_correct(response)
        self.responses[number] = correct
        right = (f"{question.answer:g}" if question.numeric else
                 f"{chr(ord('a') + int(question.answer))}) {question.options[int(question.answer)]}")
        print(("✔ right. " if correct else f"✘ not quite: the answer is {right}. ") + question.explanation)
        self._update_score()
        return correct

    def score(self) -> tuple[int, int]:
        return sum(self.responses.values()), len(self.questions)

    def summary(self) -> str:
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
            self._score_label.value = self.summary()

    def show(self) -> None:
        """The interactive quiz in Jupyter; elsewhere the questions as text (answer with ``answer``)."""
        if not _interactive():
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
                        self.answer(number, field.value)

            button.on_click(check)
            boxes.append(w.VBox([prompt, field, button, feedback]))
        self._score_label = w.HTML(self.summary())
        bundle = w.VBox([*boxes, self._score_label])._repr_mimebundle_()
        # Where widgets cannot be drawn (a saved notebook on GitHub, nbconvert), the questions as text.
        bundle["text/plain"] = self.questions_text() + "\n\nAnswer with quiz.answer(number, letter or number)."
        display(bundle, raw=True)
