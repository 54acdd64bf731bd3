"""The entry test: the short test at the start of the session, for tutors (``seglab entry-test``).

This module holds no question. The items live in the tutor's repository, outside the package
(``solutions/entry_test/bank.py`` by default), and never reach students: the kit's leak scan checks
every item's text and right answer against the kit (:func:`bank_patterns`). A bank module defines

* ``TOPICS``: :class:`Topic` (id, title, what to re-read), one Moodle category each;
* ``ITEMS``: :class:`ChoiceItem` (multiple choice: several :class:`Wording` of the stem, each with its
  right answer, and several distractor sets) and :class:`NumericFamily` (a stem with parameters and an
  ``oracle`` that builds the PyTorch layer and applies it to a tensor of that size: the answer is
  computed when the test is generated, never typed);
* optionally ``PLAN``: ``{topic id: items per test}`` (default 1 for every topic).

Fairness: every variant draws ``PLAN[topic]`` items of every topic; a topic of numeric items holds one
family, so its questions differ only in their parameters; a seed makes a test reproducible; variants
next to each other in seat (roster) order are never the same.

Outputs: :func:`moodle_xml` (Moodle's question bank import, read as ``question/format/xml/format.php``
reads it), :func:`write_pdf` (a page per variant or student, and the answer key), :func:`grade_answers`
(scores of a typed answer sheet, the pass list and a Moodle grade import CSV).
"""

from __future__ import annotations

import hashlib
import html
import importlib.util
import json
import random
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seglab.course.spreadsheet import read_rows, write_bytes, write_rows, write_text

__all__ = [
    "Bank",
    "Choice",
    "ChoiceItem",
    "EntryTestError",
    "NumericFamily",
    "Question",
    "Topic",
    "Variant",
    "Wording",
    "all_questions",
    "bank_patterns",
    "grade_answers",
    "load_bank",
    "make_variants",
    "moodle_xml",
    "parse_pass",
    "read_key",
    "write_grades",
    "write_key",
    "write_pdf",
]

CATEGORY_ROOT = "$course$/top/Entry test"
LETTERS = "abcdefgh"
MIN_PHRASE = 30  # characters: shorter answers ("atrous convolution") are course vocabulary, not secrets


class EntryTestError(ValueError):
    """A bank, key or answer sheet that cannot be used as it is (the message says where)."""


# ------------------------------------------------------------------------------------------------
# What a bank is made of
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Topic:
    id: str
    title: str
    reread: str  # the paper and section to re-read, shown as general feedback


@dataclass(frozen=True)
class Choice:
    text: str
    feedback: str  # why it is right, or why not


@dataclass(frozen=True)
class Wording:
    stem: str
    right: Choice


@dataclass(frozen=True)
class ChoiceItem:
    id: str
    topic: str
    wordings: tuple[Wording, ...]
    distractor_sets: tuple[tuple[Choice, ...], ...]
    explanation: str = ""  # general feedback, before the topic's reading


@dataclass(frozen=True)
class NumericFamily:
    id: str
    topic: str
    stem: str  # str.format template over the parameters
    parameters: tuple[dict, ...]  # the variants: same structure, other numbers
    oracle: Callable[[dict], float]  # PyTorch computes the answer from the parameters
    explanation: str = ""  # template like stem; {answer} is the answer
    tolerance: float = 0


@dataclass(frozen=True)
class Bank:
    topics: tuple[Topic, ...]
    items: tuple[ChoiceItem | NumericFamily, ...]
    plan: dict[str, int]
    source: str = ""

    def topic(self, topic_id: str) -> Topic:
        return next(t for t in self.topics if t.id == topic_id)

    def of_topic(self, topic_id: str) -> list:
        return [item for item in self.items if item.topic == topic_id]


@dataclass(frozen=True)
class Question:
    """One question as a student sees it: an item in one wording, distractor set and order, or with one set
    of parameters."""

    code: str  # item id and variant: "fcn-layers/w1d2", "conv-output/3"
    topic: str
    item: str
    text: str
    choices: tuple[Choice, ...] = ()  # in the order printed (Moodle shuffles them itself)
    answer: int | float = 0  # the right choice's index, or the number
    tolerance: float = 0
    feedback: str = ""  # general feedback: explanation and what to re-read

    @property
    def numeric(self) -> bool:
        return not self.choices

    @property
    def key(self) -> str:
        """The right answer as the key prints it: a letter, or the number."""
        return LETTERS[self.answer] if not self.numeric else _number(self.answer)


@dataclass(frozen=True)
class Variant:
    code: str
    questions: tuple[Question, ...]
    student: str = ""  # with a roster: who sits here
    moodle: str = ""  # and their Moodle identifier


def _number(value: float) -> str:
    return f"{int(value)}" if float(value) == int(value) else f"{value:g}"


# ------------------------------------------------------------------------------------------------
# Reading a bank
# ------------------------------------------------------------------------------------------------

def load_bank(path: str | Path = "solutions/entry_test") -> Bank:
    """The bank in ``path`` (a folder with ``bank.py``, or the module file), checked."""
    path = Path(path)
    module_path = path / "bank.py" if path.is_dir() else path
    if not module_path.is_file():
        raise FileNotFoundError(f"no entry-test bank at {module_path.resolve()}: pass --bank (the tutor's "
                                "repository has solutions/entry_test/)")
    name = "_seglab_entry_test_bank_" + hashlib.sha256(str(module_path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, module_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    topics, items = tuple(module.TOPICS), tuple(module.ITEMS)
    plan = {topic.id: 1 for topic in topics} | dict(getattr(module, "PLAN", {}))
    bank = Bank(topics, items, plan, str(module_path))
    _validate(bank)
    return bank


def _validate(bank: Bank) -> None:
    problems = []
    ids = [item.id for item in bank.items]
    problems += [f"item id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    topic_ids = {topic.id for topic in bank.topics}
    for item in bank.items:
        if item.topic not in topic_ids:
            problems.append(f"{item.id}: unknown topic {item.topic!r}")
        if isinstance(item, ChoiceItem):
            if len(item.wordings) < 2 or len(item.distractor_sets) < 2:
                problems.append(f"{item.id}: needs at least two wordings and two distractor sets")
            sizes = {len(d) for d in item.distractor_sets}
            if len(sizes) != 1 or min(sizes) < 2:
                problems.append(f"{item.id}: every distractor set needs the same number (at least 2) of choices")
            for wording in item.wordings:
                for distractors in item.distractor_sets:
                    texts = [wording.right.text] + [d.text for d in distractors]
                    if len(set(texts)) != len(texts):
                        problems.append(f"{item.id}: a distractor repeats the right answer or another distractor")
        elif not item.parameters:
            problems.append(f"{item.id}: a numeric family needs parameters")
    for topic in bank.topics:
        if "/" in topic.title or not topic.title.strip():
            problems.append(f"topic {topic.id}: its title names a Moodle category, so it needs text and no '/'")
        own = bank.of_topic(topic.id)
        count = bank.plan.get(topic.id, 1)
        if len(own) < count:
            problems.append(f"topic {topic.id}: the plan asks for {count} items, it has {len(own)}")
        kinds = {type(item) for item in own}
        if len(kinds) > 1:
            problems.append(f"topic {topic.id}: mixes multiple choice and numeric items (not equally hard)")
        if NumericFamily in kinds and len(own) != 1:
            problems.append(f"topic {topic.id}: a numeric topic holds one family, so its questions differ only "
                            "in their parameters")
        choice_sizes = {len(item.distractor_sets[0]) for item in own if isinstance(item, ChoiceItem)}
        if len(choice_sizes) > 1:
            problems.append(f"topic {topic.id}: its items have different numbers of choices")
    if problems:
        raise EntryTestError(f"{bank.source}: " + "; ".join(problems))


def choice_questions(item: ChoiceItem, topic: Topic) -> list[Question]:
    """Every wording × distractor set of ``item``, right answer first (for Moodle, which shuffles)."""
    feedback = _feedback(item.explanation, topic)
    return [Question(f"{item.id}/w{w + 1}d{d + 1}", item.topic, item.id, wording.stem,
                     (wording.right, *distractors), 0, 0, feedback)
            for w, wording in enumerate(item.wordings) for d, distractors in enumerate(item.distractor_sets)]


def numeric_question(family: NumericFamily, topic: Topic, index: int) -> Question:
    """``family`` with its parameter set ``index``; the answer is computed now, by the family's oracle."""
    parameters = family.parameters[index]
    answer = family.oracle(parameters)
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    explanation = family.explanation.format(**parameters, answer=_number(answer))
    return Question(f"{family.id}/{index + 1}", family.topic, family.id, family.stem.format(**parameters), (),
                    answer, family.tolerance, _feedback(explanation, topic))


def _feedback(explanation: str, topic: Topic) -> str:
    return f"{explanation} Re-read: {topic.reread}".strip()


def all_questions(bank: Bank) -> list[Question]:
    """Every question the bank can make (what the Moodle export writes)."""
    questions = []
    for item in bank.items:
        topic = bank.topic(item.topic)
        if isinstance(item, ChoiceItem):
            questions += choice_questions(item, topic)
        else:
            questions += [numeric_question(item, topic, i) for i in range(len(item.parameters))]
    return questions


def bank_patterns(bank: Bank) -> list[str]:
    """What must never reach a student, as regular expressions over :func:`plain_phrase` d text: every stem and
    every right answer of the multiple-choice items (answers shorter than :data:`MIN_PHRASE` characters are
    course vocabulary, "atrous convolution"), and every numeric stem with any parameters."""
    patterns = set()
    for item in bank.items:
        if isinstance(item, ChoiceItem):
            for wording in item.wordings:
                patterns.add(re.escape(plain_phrase(wording.stem)))
                if len(plain_phrase(wording.right.text)) >= MIN_PHRASE:
                    patterns.add(re.escape(plain_phrase(wording.right.text)))
        else:
            parts = re.split(r"\{[^}]*\}", item.stem)
            patterns.add(r".{1,300}?".join(re.escape(plain_phrase(f"x{part}x")[1:-1]) for part in parts))
    return sorted(patterns)


def plain_phrase(text: str) -> str:
    """Lower case, one space between words, no markup: how a phrase is looked for in other text."""
    text = re.sub(r"<[^>]+>", " ", html.unescape(text))
    return " ".join(re.sub(r"[*_`]", "", text).lower().split())


# ------------------------------------------------------------------------------------------------
# Variants
# ------------------------------------------------------------------------------------------------

def make_variants(bank: Bank, count: int, seed: int, roster: list[tuple[str, str]] | None = None) -> list[Variant]:
    """``count`` variants (one per roster row when there is a roster), reproducible from ``seed``.

    Every variant has ``bank.plan[topic]`` questions of every topic, in the topics' order; a topic's items
    take turns between variants; wording, distractor set, the order of the choices and numeric parameters
    are drawn. A variant never equals the one before it (seats next to each other), and the variants are
    all different where the bank allows it.
    """
    if roster is not None:
        count = len(roster)
    if count < 1:
        raise EntryTestError("ask for at least one variant")
    rng = random.Random(f"seglab-entry-test-{seed}")
    variants, seen, computed = [], set(), {}
    for number in range(count):
        previous = {q.code for q in variants[-1].questions} if variants else set()
        for _attempt in range(50):
            questions = tuple(_draw(bank, number, rng, previous, computed))
            signature = tuple((q.code, q.choices) for q in questions)
            if signature not in seen:
                break
        seen.add(signature)
        if variants and signature == tuple((q.code, q.choices) for q in variants[-1].questions):
            raise EntryTestError("the bank has too few wordings to give neighbouring seats different variants")
        student, moodle = roster[number] if roster is not None else ("", "")
        variants.append(Variant(f"{seed}-{number + 1:03d}", questions, student, moodle))
    return variants


def _draw(bank: Bank, number: int, rng: random.Random, previous: set[str], computed: dict):
    """One variant's questions; ``previous``: the codes of the seat before (its numbers are not reused)."""
    for topic in bank.topics:
        items, wanted = bank.of_topic(topic.id), bank.plan[topic.id]
        for j in range(wanted):
            item = items[(number * wanted + j) % len(items)]
            if isinstance(item, NumericFamily):
                fresh = [i for i in range(len(item.parameters)) if f"{item.id}/{i + 1}" not in previous]
                index = rng.choice(fresh or range(len(item.parameters)))
                if (item.id, index) not in computed:  # the oracle runs once per parameter set
                    computed[item.id, index] = numeric_question(item, topic, index)
                yield computed[item.id, index]
                continue
            w, d = rng.randrange(len(item.wordings)), rng.randrange(len(item.distractor_sets))
            base = choice_questions(item, topic)[w * len(item.distractor_sets) + d]
            order = list(range(len(base.choices)))
            rng.shuffle(order)
            yield Question(base.code, base.topic, base.item, base.text, tuple(base.choices[i] for i in order),
                           order.index(0), 0, base.feedback)


# ------------------------------------------------------------------------------------------------
# Moodle XML
# ------------------------------------------------------------------------------------------------

def _html(text: str) -> str:
    return f"<p>{html.escape(text, quote=False)}</p>"


def _text(parent: ET.Element, tag: str, text: str, fmt: str | None = "html") -> ET.Element:
    element = ET.SubElement(parent, tag, {"format": fmt} if fmt else {})
    ET.SubElement(element, "text").text = text
    return element


def moodle_xml(bank: Bank) -> bytes:
    """Moodle XML for *Question bank → Import → Moodle XML format*: a category per topic under
    ``$course$/top/Entry test``, every variant of every item its own question in its topic's category."""
    quiz = ET.Element("quiz")
    questions = all_questions(bank)
    for topic in bank.topics:
        category = ET.SubElement(quiz, "question", {"type": "category"})
        _text(category, "category", f"{CATEGORY_ROOT}/{topic.title}", fmt=None)
        _text(category, "info", f"Entry test, topic {topic.title!r}; re-read: {topic.reread}", fmt="plain_text")
        for question in (q for q in questions if q.topic == topic.id):
            quiz.append(_moodle_question(question))
    ET.indent(quiz)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(quiz, encoding="utf-8") + b"\n"


def _moodle_question(question: Question) -> ET.Element:
    element = ET.Element("question", {"type": "numerical" if question.numeric else "multichoice"})
    _text(element, "name", f"{question.item} {question.code.split('/')[1]}", fmt=None)
    _text(element, "questiontext", _html(question.text))
    _text(element, "generalfeedback", _html(question.feedback))
    ET.SubElement(element, "defaultgrade").text = "1"
    ET.SubElement(element, "penalty").text = "0"
    ET.SubElement(element, "hidden").text = "0"
    ET.SubElement(element, "idnumber").text = question.code
    if question.numeric:
        answer = ET.SubElement(element, "answer", {"fraction": "100", "format": "plain_text"})
        ET.SubElement(answer, "text").text = _number(question.answer)
        ET.SubElement(answer, "tolerance").text = _number(question.tolerance)
        _text(answer, "feedback", _html("Right."))
        other = ET.SubElement(element, "answer", {"fraction": "0", "format": "plain_text"})
        ET.SubElement(other, "text").text = "*"  # any other number
        ET.SubElement(other, "tolerance").text = "0"
        _text(other, "feedback", _html(f"Not this number: the answer is {_number(question.answer)}."))
        ET.SubElement(element, "unitgradingtype").text = "0"
        ET.SubElement(element, "unitpenalty").text = "0"
        ET.SubElement(element, "showunits").text = "3"
        ET.SubElement(element, "unitsleft").text = "0"
        return element
    ET.SubElement(element, "single").text = "true"
    ET.SubElement(element, "shuffleanswers").text = "1"
    ET.SubElement(element, "answernumbering").text = "abc"
    ET.SubElement(element, "showstandardinstruction").text = "0"
    _text(element, "correctfeedback", _html("Right."))
    _text(element, "partiallycorrectfeedback", _html(""))
    _text(element, "incorrectfeedback", _html("Not right: see the feedback on your choice."))
    for index, choice in enumerate(question.choices):
        answer = ET.SubElement(element, "answer", {"fraction": "100" if index == question.answer else "0",
                                                   "format": "html"})
        ET.SubElement(answer, "text").text = _html(choice.text)
        _text(answer, "feedback", _html(choice.feedback))
    return element


# ------------------------------------------------------------------------------------------------
# Paper: the PDF and the key
# ------------------------------------------------------------------------------------------------

_PLAIN = {"\u2013": "-", "\u2014": "-", "\u2192": "->", "\u2190": "<-", "\u2265": ">=", "\u2264": "<=",
          "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2212": "-",
          "\u00a0": " ", "\u221a": "sqrt"}


def _latin1(text: str) -> str:
    """Text for the PDF's core fonts (Latin-1: × and é are in it, arrows and dashes become ASCII)."""
    text = "".join(_PLAIN.get(char, char) for char in text)
    return text.encode("latin-1", "replace").decode("latin-1")


def write_pdf(variants: list[Variant], path: str | Path, *, title: str = "Entry test",
              pass_mark: str = "") -> Path:
    """One A4 page per variant: title, name and ID boxes, the variant code, the questions with an answer
    box each. The font shrinks until a variant fits its page."""
    try:
        from fpdf import FPDF
    except ImportError:
        raise ImportError("the paper version needs fpdf2: python3 -m pip install -e \".[tutor]\"") from None
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(False)
    pdf.set_creator("seglab entry-test")
    pdf.set_title(_latin1(title))
    for variant in variants:
        for size in (10, 9.5, 9, 8.5, 8, 7.5, 7, 6.5, 6):
            if _page(FPDF, variant, title, pass_mark, size, None) <= 287:
                break
        _page(FPDF, variant, title, pass_mark, size, pdf)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes(path, bytes(pdf.output()))


def _page(fpdf_class, variant: Variant, title: str, pass_mark: str, size: float, pdf) -> float:
    """Draw ``variant`` on a new page of ``pdf`` (a scratch document when None); return the bottom's y."""
    pdf = pdf or fpdf_class(format="A4", unit="mm")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    left, width, line = 12, 186, size * 0.42
    pdf.set_draw_color(0)
    pdf.set_line_width(0.4)
    pdf.set_font("Helvetica", "B", 15)
    pdf.set_xy(left, 10)
    pdf.cell(120, 8, _latin1(title))
    pdf.set_font("Helvetica", "", 9)
    pdf.set_xy(left, 18)
    pdf.cell(120, 5, _latin1("Semantic Segmentation with Deep Learning"))
    pdf.rect(150, 9, 48, 14)  # the variant code, large, top right
    pdf.set_font("Helvetica", "", 7)
    pdf.set_xy(151, 9.5)
    pdf.cell(46, 3, "variant")
    pdf.set_font("Courier", "B", 16)
    pdf.set_xy(150, 13)
    pdf.cell(48, 9, _latin1(variant.code), align="C")
    for x, w, label, value in ((left, 110, "Name", variant.student), (126, 72, "Student ID", "")):
        pdf.rect(x, 26, w, 12)
        pdf.set_font("Helvetica", "", 7)
        pdf.set_xy(x + 1, 26.5)
        pdf.cell(w - 2, 3, label)
        if value:
            pdf.set_font("Helvetica", "", 11)
            pdf.set_xy(x + 2, 31)
            pdf.cell(w - 4, 6, _latin1(value))
    pdf.set_font("Helvetica", "I", 8)
    pdf.set_xy(left, 40)
    rule = f" Pass mark: {pass_mark}." if pass_mark else " The pass mark is set by your tutor."
    pdf.multi_cell(width, 3.6, _latin1("Write one letter (multiple choice) or one number in the box beside each "
                                       f"question. One point per question.{rule}"))
    y = pdf.get_y() + 2
    box = 18
    for number, question in enumerate(variant.questions, start=1):
        text_width = width - box - 10
        pdf.set_font("Helvetica", "B", size)
        pdf.set_xy(left, y)
        pdf.cell(8, line, f"{number}.")
        pdf.set_font("Helvetica", "", size)
        pdf.set_xy(left + 8, y)
        pdf.multi_cell(text_width, line, _latin1(question.text), align="L")
        bottom = pdf.get_y()
        for letter, choice in zip(LETTERS, question.choices, strict=False):
            pdf.set_xy(left + 12, bottom)
            pdf.multi_cell(text_width - 4, line, _latin1(f"{letter})  {choice.text}"), align="L")
            bottom = pdf.get_y()
        pdf.rect(left + width - box, y, box, max(line * 1.6, 6.5))
        y = max(bottom, y + 7) + size * 0.28
    pdf.set_font("Helvetica", "", 7)
    pdf.set_xy(left, 289)
    pdf.cell(width, 3, _latin1(f"variant {variant.code}  -  {len(variant.questions)} questions"), align="R")
    return y


def write_key(variants: list[Variant], path: str | Path, *, seed: int, bank: Bank) -> tuple[Path, Path]:
    """The answer key: ``path`` (JSON, what ``seglab entry-test grade --key`` reads) and a CSV beside it
    (``variant, student, q1, q2, ...``) to read or print."""
    path = Path(path)
    data = {"seglab_entry_test_key": 1, "seed": seed, "bank": Path(bank.source).name,
            "variants": [{"code": v.code, "student": v.student, "moodle": v.moodle,
                          "questions": [{"number": n, "code": q.code, "topic": q.topic,
                                         "kind": "numeric" if q.numeric else "choice", "answer": q.key,
                                         "tolerance": q.tolerance, "choices": len(q.choices), "points": 1}
                                        for n, q in enumerate(v.questions, start=1)]}
                         for v in variants]}
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    width = max(len(v.questions) for v in variants)
    rows = [["variant", "student", *[f"q{n}" for n in range(1, width + 1)]]]
    rows += [[v.code, v.student, *[q.key for q in v.questions]] for v in variants]
    return path, write_rows(path.with_suffix(".csv"), rows)


# ------------------------------------------------------------------------------------------------
# Grading a typed answer sheet
# ------------------------------------------------------------------------------------------------

def read_key(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EntryTestError(f"{path} is not an entry-test key (JSON): {error}") from None
    if not isinstance(data, dict) or data.get("seglab_entry_test_key") != 1:
        raise EntryTestError(f"{path} is not an entry-test key written by seglab entry-test build --format pdf")
    return data


def parse_pass(text: str, maximum: float) -> float:
    """The pass mark in points: ``"60%"`` of ``maximum``, or a number of points.

    >>> parse_pass("60%", 16), parse_pass("10", 16)
    (9.6, 10.0)
    """
    text = str(text).strip()
    try:
        value = float(text[:-1]) / 100 * maximum if text.endswith("%") else float(text)
    except ValueError:
        raise EntryTestError(f"--pass {text!r}: write a percentage (60%) or a number of points") from None
    if not 0 <= value <= maximum:
        raise EntryTestError(f"--pass {text!r} lies outside 0 to {_number(maximum)} points")
    return value


@dataclass
class Result:
    student: str
    variant: str
    moodle: str
    marks: list[float] = field(default_factory=list)
    maximum: float = 0

    @property
    def score(self) -> float:
        return sum(self.marks)


def _mark(response: str, question: dict) -> float:
    response = response.strip()
    if question["kind"] == "choice":
        return float(response.lower().rstrip(")") == question["answer"])
    try:
        value = float(response.replace(",", "."))
    except ValueError:
        return 0.0
    return float(abs(value - float(question["answer"])) <= float(question["tolerance"]) + 1e-9)


def grade_answers(answers: str | Path, key: dict) -> list[Result]:
    """Score every row of ``answers`` (``student, variant, q1, q2, ...``; a blank answer scores 0).

    An unknown variant, a student twice, a question the variant does not have, or a multiple-choice answer
    that is not one of its letters stops grading with the line numbers, and nothing is graded.
    """
    header, *lines = read_rows(answers) or [[]]
    header = [cell.strip().lower() for cell in header]
    if header[:2] != ["student", "variant"] or not all(re.fullmatch(r"q\d+", c) for c in header[2:]):
        raise EntryTestError(f"{answers}: the columns must be student, variant, q1, q2, ... (found "
                             f"{', '.join(header) or 'nothing'})")
    variants = {v["code"]: v for v in key["variants"]}
    results, problems, seen = [], [], {}
    for number, line in enumerate(lines, start=2):
        if not any(cell.strip() for cell in line):
            continue
        row = dict(zip(header, [cell.strip() for cell in line], strict=False))
        student, code = row.get("student", ""), row.get("variant", "")
        if not student:
            problems.append(f"line {number}: no student")
            continue
        if student in seen:
            problems.append(f"line {number}: {student} already on line {seen[student]}")
            continue
        seen[student] = number
        variant = variants.get(code)
        if variant is None:
            problems.append(f"line {number}: variant {code!r} is not in the key")
            continue
        questions = variant["questions"]
        extra = [c for c in header[2:] if int(c[1:]) > len(questions) and row.get(c)]
        if extra:
            problems.append(f"line {number}: variant {code} has {len(questions)} questions, answers in "
                            f"{', '.join(extra)}")
        for question in questions:
            response = row.get(f"q{question['number']}", "")
            if (question["kind"] == "choice" and response
                    and response.lower().rstrip(")") not in LETTERS[:question["choices"]]):
                problems.append(f"line {number}: q{question['number']} = {response!r} is not one of "
                                f"{', '.join(LETTERS[:question['choices']])}")
        moodle = variant.get("moodle") if variant.get("student") == student and variant.get("moodle") else student
        results.append(Result(student, code, moodle, [_mark(row.get(f"q{q['number']}", ""), q) * q["points"]
                                                      for q in questions], sum(q["points"] for q in questions)))
    if problems:
        raise EntryTestError(f"{answers}: nothing was graded:\n  " + "\n  ".join(problems))
    return results


def write_grades(results: list[Result], pass_mark: str, out: str | Path, *,
                 item_name: str = "Entry test") -> tuple[Path, Path, Path]:
    """Write ``out`` (``student, variant, score, max, percent, passed, q1, ...``), ``STEM-passed.csv`` (who
    passed) and ``STEM-moodle.csv`` (Moodle's grade import: ``Username``, the grade, its feedback) beside it,
    where STEM is ``out`` without ``.csv`` and without a final ``-results``."""
    out = Path(out)
    stem = out.with_name(out.name.removesuffix(".csv").removesuffix("-results"))
    width = max((len(r.marks) for r in results), default=0)
    table = [["student", "variant", "score", "max", "percent", "passed", *[f"q{n}" for n in range(1, width + 1)]]]
    passed, moodle = [["student", "moodle", "score", "max"]], [["Username", item_name, f"{item_name} feedback"]]
    for result in sorted(results, key=lambda r: r.student):
        mark = parse_pass(pass_mark, result.maximum)
        ok = result.score >= mark - 1e-9
        percent = 100 * result.score / result.maximum if result.maximum else 0
        table.append([result.student, result.variant, _number(result.score), _number(result.maximum),
                      f"{percent:.1f}", "yes" if ok else "no", *[_number(m) for m in result.marks]])
        if ok:
            passed.append([result.student, result.moodle, _number(result.score), _number(result.maximum)])
        moodle.append([result.moodle, _number(result.score),
                       f"{_number(result.score)} of {_number(result.maximum)} points ({percent:.0f} %): "
                       f"{'passed' if ok else 'not passed'} (pass mark {pass_mark}); variant {result.variant}"])
    return (write_rows(out, table), write_rows(Path(f"{stem}-passed.csv"), passed),
            write_rows(Path(f"{stem}-moodle.csv"), moodle))
