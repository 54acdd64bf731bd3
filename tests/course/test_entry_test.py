"""The entry test (``seglab entry-test``): the tutor's bank, Moodle XML read back by Moodle's rules, the paper
version rendered and looked at as images, grading a typed answer sheet, fair variants, and no leak."""

import html
import itertools
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import nbformat
import numpy as np
import pytest
from PIL import Image
from torch import nn

from seglab.arithmetic import conv_output_size, pool_output_size, receptive_field, transposed_conv_output_size
from seglab.cli import main
from seglab.course import entry_test
from seglab.course.entry_test import (
    CATEGORY_ROOT,
    Choice,
    ChoiceItem,
    EntryTestError,
    NumericFamily,
    Topic,
    Wording,
    all_questions,
    bank_patterns,
    load_bank,
    make_variants,
    moodle_xml,
    plain_phrase,
)
from seglab.course.kit import SolutionSecrets, find_leaks
from seglab.course.spreadsheet import read_rows, write_rows
from seglab.models.unet import unet_output_size
from seglab.notebook.questions import PREPARATION_QUESTIONS
from tests.support import ROOT

BANK_DIR = ROOT / "solutions" / "entry_test"
BRIEF_TOPICS = {  # the brief's "Am I prepared?" questions and its nomenclature
    "unet-vs-fcn", "transposed-signal", "deep-shallow", "segmentation", "fcn-vs-classifier", "fcn-layers",
    "output-resolution", "names-upsampling", "names-merges",
}
NUMERIC_TOPICS = {"conv-output", "pool-output", "transposed-output", "total-stride", "receptive-field",
                  "unet-sizes", "dilated-span"}


@pytest.fixture(scope="module")
def bank():
    return load_bank(BANK_DIR)


@pytest.fixture(scope="module")
def questions(bank):
    return all_questions(bank)


# --- the bank -------------------------------------------------------------------------------------------------

def test_the_bank_is_tutor_side_and_covers_the_brief(bank):
    assert ROOT / "seglab" not in BANK_DIR.resolve().parents  # the wheel ships seglab/ only
    assert {t.id for t in bank.topics} == BRIEF_TOPICS | NUMERIC_TOPICS
    text = " ".join(plain_phrase(w.stem + " " + w.right.text) for item in bank.items if isinstance(item, ChoiceItem)
                    for w in item.wordings)
    for term in ("bilinear upsampling", "transposed convolution", "deconvolution", "fractionally strided",
                 "atrous", "dilated convolution", "skip-connection: concatenate", "short-cut: sum",
                 "u-net concatenates features, fcn sums scores"):
        assert term in text, term
    for item in bank.items:
        if isinstance(item, ChoiceItem):
            assert len(item.wordings) >= 2 and len(item.distractor_sets) >= 2, item.id
            assert all(c.feedback for w in item.wordings for c in (w.right,))
            assert all(c.feedback for d in item.distractor_sets for c in d), item.id
        else:
            assert len(item.parameters) >= 5, item.id
    # the package holds no item: the generator module's text has none of the bank's phrases
    source = plain_phrase((ROOT / "seglab" / "course" / "entry_test.py").read_text(encoding="utf-8"))
    assert [p for p in bank_patterns(bank) if re.search(p, source)] == []


def test_the_right_answer_is_not_given_away_by_its_length(bank):
    """A test-wise student who picks the longest (or shortest) choice does about as well as chance."""
    longest = shortest = combinations = 0
    for item in bank.items:
        if isinstance(item, ChoiceItem):
            for wording in item.wordings:
                for distractors in item.distractor_sets:
                    right, others = len(wording.right.text), [len(c.text) for c in distractors]
                    assert right <= 1.2 * max(others), (item.id, wording.right.text)
                    combinations += 1
                    longest += right > max(others)
                    shortest += right < min(others)
    assert longest / combinations <= 1 / 3 and shortest / combinations <= 0.35


def _counting_calls(monkeypatch):
    calls = []
    original = nn.Module.__call__

    def counted(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nn.Module, "__call__", counted)
    return calls


def test_numeric_answers_are_computed_by_pytorch_layers(bank, monkeypatch):
    """Every family's oracle applies PyTorch layers to a tensor, and agrees with the size formulas."""
    families = {item.id: item for item in bank.items if isinstance(item, NumericFamily)}
    assert set(families) == NUMERIC_TOPICS
    formulas = {
        "conv-output": lambda q: conv_output_size(q["i"], q["k"], q["s"], q["p"]),
        "pool-output": lambda q: pool_output_size(q["i"], q["k"], q["s"]),
        "transposed-output": lambda q: transposed_conv_output_size(q["i"], q["k"], q["s"], q["p"],
                                                                   output_padding=q["op"]),
        "total-stride": lambda q: receptive_field([layer[1:] for layer in q["layers"]]).jump,
        "receptive-field": lambda q: receptive_field([layer[1:] for layer in q["layers"]]).size,
        "unet-sizes": lambda q: unet_output_size(q["size"], q["depth"]),
        "dilated-span": lambda q: q["d"] * (q["k"] - 1) + 1,
    }
    for family in families.values():
        for parameters in family.parameters:
            calls = _counting_calls(monkeypatch)
            answer = family.oracle(parameters)
            assert calls, f"{family.id} computed {parameters} without applying a layer"
            assert answer == formulas[family.id](parameters), (family.id, parameters)
            monkeypatch.undo()
    # one family's questions differ only in their parameters: the stem's fixed text is the same
    for family in families.values():
        fixed = {re.sub(r"\d+", "N", family.stem.format(**p)) for p in family.parameters}
        assert len(fixed) == 1 or family.id in ("total-stride", "receptive-field"), family.id


def _notebook_00_texts():
    texts = []
    for folder in ("solutions", "notebooks"):
        path = next((ROOT / folder).glob("00_*.ipynb"))
        texts += [cell.source for cell in nbformat.read(path, as_version=4).cells]
    for question in PREPARATION_QUESTIONS:  # the 14 questions notebook 00 shows, from the wheel
        texts += [question.prompt, question.explanation, *question.options]
    return plain_phrase("\n".join(texts))


def test_no_item_appears_word_for_word_in_notebook_00(bank):
    seen = _notebook_00_texts()
    for item in bank.items:
        if isinstance(item, ChoiceItem):
            for wording in item.wordings:
                assert plain_phrase(wording.stem) not in seen, item.id
                assert len(wording.right.text) < 20 or plain_phrase(wording.right.text) not in seen, item.id
            for distractors in item.distractor_sets:
                assert all(len(c.text) < 30 or plain_phrase(c.text) not in seen for c in distractors), item.id
        else:
            assert all(plain_phrase(family_text) not in seen
                       for family_text in (item.stem.format(**p) for p in item.parameters)), item.id
    prompts = [plain_phrase(q.prompt) for q in PREPARATION_QUESTIONS]
    stems = [plain_phrase(q.text) for q in all_questions(bank)]
    assert not [p for p in prompts if p in stems], "a self-test question copied into the bank"


def test_a_bank_that_breaks_the_rules_is_refused(tmp_path):
    (tmp_path / "bank.py").write_text(
        "from seglab.course.entry_test import *\n"
        "TOPICS = (Topic('a', 'A', 'paper'),)\n"
        "ITEMS = (ChoiceItem('x', 'a', (Wording('q?', Choice('r', 'f')),), ((Choice('r', 'f'),),)),\n"
        "         NumericFamily('n', 'a', 's {v}', ({'v': 1},), lambda q: 1))\n")
    with pytest.raises(EntryTestError) as error:
        load_bank(tmp_path)
    message = str(error.value)
    assert "two wordings" in message and "repeats the right answer" in message and "mixes" in message


# --- Moodle XML, read back by the rules of question/format/xml/format.php ---------------------------------

def _read_text(element, path):
    node = element.find(path)
    return None if node is None else (node.text or "").strip()


def _single(value):  # qformat_xml::trans_single
    return 0 if (value or "").strip() in ("false", "") else 1


def test_moodle_xml_imports_by_moodles_rules(bank, questions, tmp_path):
    out = tmp_path / "entry.xml"
    assert main(["entry-test", "build", "--format", "moodle", "--bank", str(BANK_DIR), "--out", str(out)]) == 0
    root = ET.parse(out).getroot()
    assert root.tag == "quiz"  # readquestions: $xml['quiz']['#']['question']
    assert {child.tag for child in root} == {"question"}
    categories, current, counts, idnumbers = [], None, {}, set()
    for question in root:
        kind = question.get("type")
        if kind == "category":
            current = _read_text(question, "category/text")
            assert current.startswith(CATEGORY_ROOT + "/")
            categories.append(current)
            continue
        assert current is not None, "a question before the first category"
        counts[current] = counts.get(current, 0) + 1
        assert kind in ("multichoice", "numerical")
        assert _read_text(question, "name/text"), "xmlimportnoname"
        text = question.find("questiontext")
        assert text.get("format") == "html" and _read_text(question, "questiontext/text")
        assert "Re-read:" in html.unescape(_read_text(question, "generalfeedback/text"))
        assert float(_read_text(question, "defaultgrade")) == 1
        idnumber = _read_text(question, "idnumber")
        assert idnumber and idnumber not in idnumbers  # unique within (here: across) categories
        idnumbers.add(idnumber)
        answers = question.findall("answer")
        fractions = [float(a.get("fraction")) / 100 for a in answers]  # import_answer: @fraction / 100
        assert all(_read_text(a, "feedback/text") for a in answers), "feedback per answer"
        if kind == "multichoice":
            assert _single(_read_text(question, "single")) == 1
            assert _single(_read_text(question, "shuffleanswers")) == 1
            assert _read_text(question, "answernumbering") in ("abc", "ABCD", "123", "iii", "IIII", "none")
            assert len(answers) == 4 and all(a.get("format") == "html" and _read_text(a, "text") for a in answers)
            assert sorted(fractions) == [0, 0, 0, 1], "single answer: exactly one at 100 %"
            texts = [html.unescape(re.sub("<[^>]+>", "", _read_text(a, "text"))) for a in answers]
            assert len(set(texts)) == 4
        else:
            right = [a for a, f in zip(answers, fractions, strict=True) if f == 1]
            assert len(right) == 1 and float(_read_text(right[0], "text")) == int(_read_text(right[0], "text"))
            assert all(_read_text(a, "tolerance") is not None and float(_read_text(a, "tolerance")) >= 0
                       for a in answers)
            assert all(_read_text(a, "text") == "*" for a, f in zip(answers, fractions, strict=True) if f == 0)
    assert categories == [f"{CATEGORY_ROOT}/{t.title}" for t in bank.topics]  # one category per topic
    expected = {f"{CATEGORY_ROOT}/{t.title}": sum(q.topic == t.id for q in questions) for t in bank.topics}
    assert counts == expected  # every variant of every item is its own question in its topic's category
    numeric = {q.code: q.answer for q in questions if q.numeric}
    for question in root.iter("question"):
        if question.get("type") == "numerical":
            code = _read_text(question, "idnumber")
            assert float(_read_text(question, "answer[@fraction='100']/text")) == numeric[code]


def test_moodle_xml_escapes_html_and_xml(tmp_path):
    topic = Topic("t", "Sizes & <shapes>", "paper, section 1")
    item = ChoiceItem("x", "t", (Wording("Is 2 < 3 & 4 > 1?", Choice("yes <b>", "right & true")),
                                 Wording("Second \"wording\"?", Choice("yes", "ok"))),
                      ((Choice("no", "f"), Choice("maybe ]]>", "f")), (Choice("x", "f"), Choice("y", "f"))))
    bank = entry_test.Bank((topic,), (item,), {"t": 1})
    root = ET.fromstring(moodle_xml(bank))
    assert root.find("question/category/text").text == f"{CATEGORY_ROOT}/Sizes & <shapes>"
    first = root.findall("question")[1]
    assert first.find("questiontext/text").text == "<p>Is 2 &lt; 3 &amp; 4 &gt; 1?</p>"
    assert [a.find("text").text for a in first.findall("answer")][:3] == ["<p>yes &lt;b&gt;</p>", "<p>no</p>",
                                                                         "<p>maybe ]]&gt;</p>"]


# --- fair variants --------------------------------------------------------------------------------------------

def test_variants_are_fair_reproducible_and_differ_next_to_each_other(bank):
    variants = make_variants(bank, 12, seed=5)
    assert variants == make_variants(bank, 12, seed=5)
    assert [q.code for q in make_variants(bank, 12, seed=6)[0].questions] != [q.code for q in variants[0].questions]
    for variant in variants:
        per_topic = [q.topic for q in variant.questions]
        assert per_topic == [t.id for t in bank.topics for _ in range(bank.plan[t.id])]
        for question in variant.questions:
            if not question.numeric:
                assert len(question.choices) == 4 and 0 <= question.answer < 4
    for before, after in itertools.pairwise(variants):  # neighbours: other items or wordings, other numbers
        assert [(q.code, q.choices) for q in before.questions] != [(q.code, q.choices) for q in after.questions]
        assert not {q.code for q in before.questions if q.numeric} & {q.code for q in after.questions if q.numeric}
    assert len({tuple((q.code, q.choices) for q in v.questions) for v in variants}) == 12
    # the right answer is spread over the letters, not always a)
    assert len({q.answer for v in variants for q in v.questions if not q.numeric}) == 4
    roster = [(f"s{n}", f"m{n}") for n in range(7)]
    seated = make_variants(bank, 0, seed=1, roster=roster)
    assert [(v.student, v.moodle) for v in seated] == roster and len({v.code for v in seated}) == 7


# --- the paper version ----------------------------------------------------------------------------------------

def _pdftoppm():
    tool = shutil.which("pdftoppm")
    assert tool, "pdftoppm is missing: install Debian's poppler-utils (tools/install-system-packages)"
    return tool


def _region(image, box_mm, dpi):
    scale = dpi / 25.4
    x0, y0, x1, y1 = (round(v * scale) for v in box_mm)
    return np.asarray(image.convert("L"))[y0:y1, x0:x1] < 128


def _dark(image, box_mm, dpi):
    """Share of dark pixels in a region given in mm (x0, y0, x1, y1)."""
    return float(_region(image, box_mm, dpi).mean())


def _line(image, box_mm, dpi):
    """Whether a horizontal line crosses the region: a row of it almost all dark."""
    return float(_region(image, box_mm, dpi).mean(axis=1).max()) > 0.9


def test_pdf_of_three_variants_and_its_key_render(bank, tmp_path):
    pdf = tmp_path / "test.pdf"
    assert main(["entry-test", "build", "--format", "pdf", "--bank", str(BANK_DIR), "--variants", "3", "--seed", "11",
                 "--pass", "60%", "--out", str(pdf)]) == 0
    key = json.loads((tmp_path / "test-key.json").read_text())
    codes = [v["code"] for v in key["variants"]]
    assert codes == ["11-001", "11-002", "11-003"] and key["seed"] == 11
    rows = read_rows(tmp_path / "test-key.csv")
    assert [r[0] for r in rows[1:]] == codes and len(rows[0]) == 2 + 16
    variants = make_variants(bank, 3, seed=11)  # the same seed, the same test
    assert [[q.key for q in v.questions] for v in variants] == [r[2:] for r in rows[1:]]
    dpi = 60
    subprocess.run([_pdftoppm(), "-r", str(dpi), "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 3  # a page per variant
    for number, (page, variant) in enumerate(zip(pages, variants, strict=True), start=1):
        image = Image.open(page)
        assert abs(image.width / image.height - 210 / 297) < 0.01  # A4
        assert _line(image, (20, 24.5, 100, 27.5), dpi) and _line(image, (20, 36.5, 100, 39.5), dpi)  # name box
        assert _line(image, (130, 24.5, 190, 27.5), dpi) and _line(image, (130, 36.5, 190, 39.5), dpi)  # ID box
        assert _dark(image, (30, 31, 118, 37), dpi) < 0.01  # an empty name box: for the student to write in
        assert _dark(image, (155, 14, 193, 21), dpi) > 0.03  # the variant code is printed in its box
        assert _dark(image, (12, 270, 198, 286), dpi) < 0.01  # the questions fit above the footer
        text = subprocess.run(["pdftotext", "-layout", "-f", str(number), "-l", str(number), str(pdf), "-"],
                              capture_output=True, text=True, check=True).stdout
        assert variant.code in text and "Name" in text and "Student ID" in text and "Pass mark: 60%" in text
        flat = " ".join(text.split())
        for question in variant.questions:
            assert " ".join(question.text.split())[:40] in flat
            if not question.numeric:
                right = question.choices[question.answer].text
                assert f"{question.key}) {' '.join(right.split())[:30]}" in flat


def test_pdf_with_a_roster_prints_each_students_name(bank, tmp_path):
    roster = tmp_path / "roster.csv"
    write_rows(roster, [["student", "moodle"], ["Ada Lovelace", "ada"], ["Alan Turing", "alan"]])
    pdf = tmp_path / "seats.pdf"
    assert main(["entry-test", "build", "--format", "pdf", "--bank", str(BANK_DIR), "--roster", str(roster),
                 "--seed", "2",
                 "--out", str(pdf)]) == 0
    subprocess.run([_pdftoppm(), "-r", "60", "-png", str(pdf), str(tmp_path / "seat")], check=True)
    pages = sorted(tmp_path.glob("seat-*.png"))
    assert len(pages) == 2
    assert all(_dark(Image.open(p), (13, 31, 118, 37), 60) > 0.01 for p in pages)  # the name is printed
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Ada Lovelace" in text and "Alan Turing" in text and "The pass mark is set by your tutor" in text
    key = json.loads((tmp_path / "seats-key.json").read_text())
    assert [(v["student"], v["moodle"]) for v in key["variants"]] == [("Ada Lovelace", "ada"), ("Alan Turing", "alan")]


# --- grading the typed answers --------------------------------------------------------------------------------

def _wrong(question: dict) -> str:
    if question["kind"] == "choice":
        return next(letter for letter in "abcd" if letter != question["answer"])
    return str(int(question["answer"]) + 1)


def test_grading_gives_exact_scores_the_pass_list_and_a_moodle_import(bank, tmp_path):
    variants = make_variants(bank, 3, seed=4, roster=[("ada", "ada@uni"), ("bob", "bob@uni"), ("cy", "cy@uni")])
    key_path, _ = entry_test.write_key(variants, tmp_path / "key.json", seed=4, bank=bank)
    key = json.loads(key_path.read_text())
    ada, bob, cy = (v["questions"] for v in key["variants"])
    answers = [["student", "variant", *[f"q{n}" for n in range(1, 17)]],
               ["ada", "4-001", *[q["answer"].upper() if n % 2 else q["answer"] for n, q in enumerate(ada)]],
               ["bob", "4-002", *[q["answer"] if n < 10 else _wrong(q) for n, q in enumerate(bob)]],  # 10 of 16
               ["cy", "4-003", *[q["answer"] if n < 9 else "" for n, q in enumerate(cy)]],  # 9 of 16, blanks
               ["dan", "4-001", *[_wrong(q) for q in ada]]]  # not on the roster: his own name
    # a numeric answer typed with a decimal comma still counts
    numeric = next(n for n, q in enumerate(bob) if q["kind"] == "numeric")
    answers[2][2 + numeric] = f"{bob[numeric]['answer']},0"
    sheet = write_rows(tmp_path / "answers.csv", answers)
    assert main(["entry-test", "grade", str(sheet), "--key", str(key_path), "--pass", "60%"]) == 0
    results = read_rows(tmp_path / "answers-results.csv")
    assert results[0][:6] == ["student", "variant", "score", "max", "percent", "passed"]
    table = {r[0]: r[1:6] for r in results[1:]}
    assert table == {"ada": ["4-001", "16", "16", "100.0", "yes"], "bob": ["4-002", "10", "16", "62.5", "yes"],
                     "cy": ["4-003", "9", "16", "56.2", "no"], "dan": ["4-001", "0", "16", "0.0", "no"]}
    assert [r[:2] for r in read_rows(tmp_path / "answers-passed.csv")] == [["student", "moodle"], ["ada", "ada@uni"],
                                                                          ["bob", "bob@uni"]]
    moodle = read_rows(tmp_path / "answers-moodle.csv")
    assert moodle[0] == ["Username", "Entry test", "Entry test feedback"]
    assert {r[0]: r[1] for r in moodle[1:]} == {"ada@uni": "16", "bob@uni": "10", "cy@uni": "9", "dan": "0"}
    assert "not passed (pass mark 60%)" in dict((r[0], r[2]) for r in moodle[1:])["cy@uni"]
    # a pass mark in points
    assert main(["entry-test", "grade", str(sheet), "--key", str(key_path), "--pass", "9", "--out",
                 str(tmp_path / "points.csv")]) == 0
    assert [r[5] for r in read_rows(tmp_path / "points.csv")[1:]] == ["yes", "yes", "yes", "no"]


def test_grading_stops_on_mistakes_in_the_sheet(bank, tmp_path, capsys):
    variants = make_variants(bank, 2, seed=8)
    key_path, _ = entry_test.write_key(variants, tmp_path / "key.json", seed=8, bank=bank)
    choice = next(n for n, q in enumerate(variants[0].questions, start=1) if not q.numeric)
    sheet = write_rows(tmp_path / "bad.csv", [["student", "variant", f"q{choice}"], ["ada", "8-009", "a"],
                                              ["bob", "8-001", "z"], ["bob", "8-002", "a"]])
    assert main(["entry-test", "grade", str(sheet), "--key", str(key_path), "--pass", "60%"]) == 2
    error = capsys.readouterr().err
    assert "line 2: variant '8-009' is not in the key" in error
    assert f"line 3: q{choice} = 'z' is not one of a, b, c, d" in error and "line 4: bob already on line 3" in error
    assert not (tmp_path / "bad-results.csv").exists()
    with pytest.raises(EntryTestError):
        entry_test.parse_pass("120%", 16)


# --- no leak ---------------------------------------------------------------------------------------------------

def test_the_leak_scan_knows_the_bank(bank, tmp_path):
    secrets = SolutionSecrets.read(ROOT / "solutions")
    assert secrets.patterns == bank_patterns(bank) and len(secrets.patterns) > 50
    # the student notebooks and the package (what the wheel holds) have none of the bank's items
    assert find_leaks(ROOT / "notebooks", secrets) == []
    package = shutil.copytree(ROOT / "seglab", tmp_path / "seglab", ignore=shutil.ignore_patterns("__pycache__"))
    assert find_leaks(package, secrets) == []
    # and a planted item is found: a stem in a notebook, a right answer in a module
    stem = next(item for item in bank.items if isinstance(item, ChoiceItem)).wordings[1]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"Practice: *{stem.stem}*")])
    nbformat.write(notebook, tmp_path / "seglab" / "practice.ipynb")
    (tmp_path / "seglab" / "hint.py").write_text(f"HINT = '''{stem.right.text.upper()}'''\n")
    leaks = "\n".join(find_leaks(package, secrets))
    assert "seglab/practice.ipynb: an entry-test item" in leaks and "seglab/hint.py: an entry-test item" in leaks


def test_the_entry_test_command_needs_the_bank(tmp_path, capsys):
    assert main(["entry-test", "build", "--bank", str(tmp_path / "none")]) == 2
    assert "no entry-test bank" in capsys.readouterr().err


def test_oracles_are_cheap(bank):
    """Generating every question (PyTorch applied to each parameter set) stays fast."""
    import time

    start = time.perf_counter()
    all_questions(bank)
    assert time.perf_counter() - start < 20


def test_the_paper_version_names_the_tutor_extra_when_fpdf2_is_missing(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fpdf" else real(name, *a))
    assert main(["entry-test", "build", "--format", "pdf", "--bank", str(BANK_DIR), "--out",
                 str(tmp_path / "t.pdf")]) == 2
    err = capsys.readouterr().err
    assert 'pip install "seglab[tutor]"' in err and "fpdf" in err and not (tmp_path / "t.pdf").exists()
