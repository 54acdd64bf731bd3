"""The ``seglab`` command line. ``seglab --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import os
import platform
import sys

from seglab.notebook.tables import table

__all__ = ["main"]


def _info(args: argparse.Namespace) -> int:
    import numpy
    import torch
    import torchvision

    import seglab
    from seglab.training.device import pick_device
    from seglab.training.threads import thread_choice

    device = pick_device("auto")
    rows = [
        ("seglab", seglab.__version__),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("torchvision", torchvision.__version__),
        ("numpy", numpy.__version__),
        ("device (auto)", str(device)),
        ("CUDA available", str(torch.cuda.is_available())),
    ]
    if device.type == "cuda":
        rows.append(("GPU", f"{torch.cuda.get_device_name(device)} (x{torch.cuda.device_count()})"))
    rows += [
        ("CPU cores", str(os.cpu_count())),
        ("torch threads", f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op"),
        ("seglab threads", "{} for training and evaluation ({})".format(*thread_choice())),
        ("platform", platform.platform()),
    ]
    if args.speed:  # the unit the notebooks state their times in
        from seglab.training.recipes import training_rate

        rate = training_rate("unet", device=device)
        rows.append(("training speed", f"{rate:.0f} images/s (the default U-Net recipe, on {device}): a notebook "
                                       f"stated at R images/s takes about R / {rate:.0f} times as long here"))
    print(table(None, rows, markdown=False))
    return 0


def _print_result(result: dict, class_names) -> None:
    rows = [list(row) for row in zip(class_names, result["iou"], result["dice"], strict=True)]
    print(table(["class", "IoU", "Dice"], [*rows, ["mean", result["miou"], result["mean_dice"]]], markdown=False))
    print(f"pixel accuracy {result['pixel_accuracy']:.3f}, loss {result['loss']:.4f}")


def _recipe(args: argparse.Namespace):
    from dataclasses import fields

    from seglab.training.recipes import Recipe

    return Recipe(**{setting.name: getattr(args, setting.name) for setting in fields(Recipe)})


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """One option per field of :class:`seglab.training.recipes.Recipe`, with its default and help text."""
    from dataclasses import fields

    from seglab.training.recipes import Recipe

    for setting in fields(Recipe):
        flag, options = "--" + setting.name.replace("_", "-"), dict(setting.metadata)
        if setting.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=setting.default, **options)
        else:
            kind = type(setting.default)
            parser.add_argument(flag, type=kind, default=setting.default, metavar=options.pop("metavar", None)
                                or (None if "choices" in options else kind.__name__.upper()),
                                **{**options, "help": options["help"] + " (default: %(default)s)"})


def _train(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from seglab.training import distributed
    from seglab.training.checkpoints import atomic_write, load_checkpoint
    from seglab.training.evaluation import evaluate
    from seglab.training.fit import make_loader
    from seglab.training.recipes import train_model

    recipe = _recipe(args)
    checkpoint = args.checkpoint or f"runs/{args.model}-{args.data}.pt"
    say = print if int(os.environ.get("RANK", "0")) == 0 else (lambda *a, **k: None)  # torchrun: rank 0 speaks
    say(f"training {args.model} on {args.data} data for {args.epochs} epochs (device {args.device})")
    amp = {"on": True, "off": False}.get(args.amp, args.amp)
    model, history, (train_set, val_set) = train_model(args.model, recipe, device=args.device, amp=amp,
                                                       checkpoint=checkpoint, resume=args.resume,
                                                       progress=not args.no_progress)
    if not history.epochs:
        say(f"no epoch finished ({history.stop_reason}); nothing saved")
        return 1
    result = evaluate(model, make_loader(val_set, recipe.val_batch_size, train=False, device=args.device),
                      device=args.device)
    if distributed.is_main_process():
        state = load_checkpoint(checkpoint)  # record the recipe, so `seglab evaluate` can rebuild the data
        state["recipe"] = asdict(recipe)
        atomic_write(state, checkpoint)
        print(f"\nvalidation after {len(history)} epochs ({sum(history['seconds']):.0f} s of training):")
        _print_result(result, train_set.class_names)
        print(f"checkpoint: {checkpoint}")
    return 0 if history.stop_reason is None else 1


def _evaluate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from seglab.training.checkpoints import load_model
    from seglab.training.evaluation import evaluate
    from seglab.training.fit import make_loader
    from seglab.training.recipes import Recipe, make_datasets

    model, state = load_model(args.checkpoint)
    recipe = Recipe(**state["recipe"]) if state.get("recipe") else None
    if recipe is None and args.data is None:
        print("the checkpoint does not say which data it was trained on: pass --data", file=sys.stderr)
        return 2
    recipe = recipe or Recipe()
    changes = {k: v for k, v in (("data", args.data), ("size", args.size), ("n_val", args.n_val)) if v is not None}
    recipe = replace(recipe, **changes)
    _, val_set = make_datasets(replace(recipe, n_train=1))
    result = evaluate(model, make_loader(val_set, recipe.val_batch_size, train=False, device=args.device),
                      device=args.device)
    print(f"{args.checkpoint}: {state['config']['name']} after {state['epoch']} epochs, {recipe.data} validation data")
    _print_result(result, val_set.class_names)
    return 0


# Tutor-only commands and what they need beyond seglab's own dependencies: (extra, modules).
TUTOR_NEEDS = {"release --kit": ("tutor", ("setuptools", "jinja2")),
               "entry-test build --format pdf": ("tutor", ("fpdf",)),
               "grade --feedback": ("tutor", ("jinja2",)), "similarity": ("tutor", ("jinja2",))}


def _require_extra(command: str) -> None:
    """Say which extra to install, instead of a traceback, when a tutor command lacks a package."""
    import importlib.util

    extra, modules = TUTOR_NEEDS[command]
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise _MissingExtra(f"`seglab {command}` is a tutor command and needs {', '.join(missing)}: "
                            f'install it with  python3 -m pip install "seglab[{extra}]"  (in the repository: '
                            f'python3 -m pip install -e ".[{extra}]")')


class _MissingExtra(Exception):
    """A tutor command was run without the packages of its extra."""


def _release(args: argparse.Namespace) -> int:
    if args.kit:
        from seglab.course.kit import KitError, build_kit

        _require_extra("release --kit")
        try:
            folder, archive = build_kit(args.kit, source_dir=args.source, wheel_url=args.wheel_url)
        except KitError as error:
            print(f"seglab release: error: {error}", file=sys.stderr)
            return 2
        print(f"student kit: {folder}/ and {archive} (no solution material found in either)")
        return 0
    from seglab.course.release import release_all

    for path in release_all(args.source, args.target, args.wheel_url):
        print(f"released {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from seglab.course.selfcheck import check_notebook, format_report, printable, submission_zip

    check = check_notebook(args.notebook, quick=not args.full, timeout=args.timeout, progress=not args.no_progress)
    encoding = getattr(sys.stdout, "encoding", None)  # cp1252 on Windows when redirected: no ✔ there
    print(format_report(check, encoding=encoding))
    if args.zip:
        archive = submission_zip(args.notebook, args.out)
        print(printable(f"\nsubmission: {archive}", encoding))
    return 0


def _bytes(text: str) -> int:
    """``"6G"``, ``"512M"`` or a number of bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    try:
        return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1:].upper() in units else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: write e.g. 6G or 512M") from None


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shard: write I/N, e.g. 3/8") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"shard {text}: I must be between 1 and N")
    return index, count


def _grade_merge(args: argparse.Namespace) -> int:
    from seglab.course.grade import merge_shards
    from seglab.course.rows import points_table

    batch = merge_shards(args.csvs, args.out)
    print(points_table(batch.rows))
    print(f"\n{len(batch.rows)} rows from {len(args.csvs)} shards written to {args.out}"
          + (f"; answers to grade by hand in {batch.sheet}" if batch.sheet else ""))
    return 0


def _grade_manual(args: argparse.Namespace) -> int:
    from seglab.course.grade import merge_hand_grading
    from seglab.course.rows import points_table

    if args.feedback:
        _require_extra("grade --feedback")
    batch = merge_hand_grading(args.out, args.sheet, solutions_dir=args.solutions, feedback_dir=args.feedback)
    if batch.merged:
        print(f"merged {batch.merged} hand-graded answers from {batch.sheet}")
    if batch.pages is not None:
        _say(f"{batch.pages} feedback pages in {args.feedback}/")
    print(points_table(batch.rows))
    print(f"\n{len(batch.rows)} rows written to {batch.out}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from seglab.course.grade import GradeOptions, grade_class
    from seglab.course.rows import points_table
    from seglab.course.sandbox import Limits, SandboxUnavailable, enforcement

    if args.feedback:
        _require_extra("grade --feedback")
    if args.sandbox == "none":
        print("WARNING: --sandbox none: submissions run WITHOUT isolation. A submission can read and change your "
              "files (solutions included), use the network and stop the grader. Grade untrusted work only with "
              "the bwrap sandbox.", file=sys.stderr)
    print("limits on this machine: " + "; ".join(f"{name}: {how}" for name, how in enforcement(args.sandbox).items()),
          file=sys.stderr)
    options = GradeOptions(solutions_dir=args.solutions, timeout=args.timeout, total_timeout=args.total_timeout,
                           workers=args.workers, sandbox=args.sandbox, limits=Limits(memory_bytes=args.memory),
                           seed=args.seed, quick=not args.full, only_needed=not args.all_cells, shard=args.shard,
                           progress=not args.no_progress, feedback_dir=args.feedback)

    def resuming(count: int) -> None:
        if count:
            print(f"resuming: {count} submissions in {args.out} are not graded again")
        elif args.resume:
            print(f"nothing to resume in {args.out}: grading every submission")

    try:
        batch = grade_class(args.submissions, options, out=args.out, sheet=args.manual, resume=args.resume,
                            on_resume=resuming)
    except SandboxUnavailable as error:
        print(f"seglab grade run: error: {error}", file=sys.stderr)
        return 2
    if batch.sheet_problem:  # a sheet with mistakes: say so, the automatic grades stand
        print(f"seglab grade run: error: {batch.sheet_problem}", file=sys.stderr)
    elif batch.merged:
        print(f"merged {batch.merged} hand-graded answers from {batch.sheet}")
    if batch.pages is not None:
        _say(f"{batch.pages} feedback pages in {args.feedback}/")
    print(points_table(batch.rows))
    print(f"\n{len(batch.rows)} rows written to {batch.out}; answers to grade by hand in {batch.sheet} (then: seglab "
          f"grade manual {batch.sheet} --out {batch.out})")
    return 0


def _say(text: str) -> None:
    from seglab.course.spreadsheet import say  # a name may hold any code point: printed on any console

    say(text)


def _similarity(args: argparse.Namespace) -> int:
    _require_extra("similarity")
    from pathlib import Path

    from seglab.course.similarity import compare, report_html
    from seglab.course.spreadsheet import say, write_text

    found = compare(args.submissions, notebooks_dir=args.notebooks, threshold=args.threshold)
    pairs = found.pairs
    # atomic, valid UTF-8 whatever the answers hold
    write_text(Path(args.out), report_html(pairs, args.threshold, found.unread))
    for pair in pairs:
        exercises = ", ".join(e for e, share in pair.exercises if share >= args.threshold)
        say(f"{pair.score:4.0%}  {pair.a}  {pair.b}  ({exercises})")
    for student, notes in sorted(found.unread.items()):
        for note in notes:
            say(f"not compared: {student}: {note}")
    say(f"{len(pairs)} pairs at or above {args.threshold:.0%}; side by side in {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from seglab.course.export import ExportError, moodle_table, wide_table, write_table
    from seglab.course.roster import read_roster
    from seglab.course.rows import read_csv
    from seglab.course.spreadsheet import say

    try:
        rows = read_csv(args.grades)
        if args.format == "moodle":
            roster = dict(read_roster(args.roster)) if args.roster else None
            table = moodle_table(rows, id_column=args.id_column, roster=roster)
        else:
            table = wide_table(rows)
    except (ExportError, ValueError, FileNotFoundError) as error:
        print(f"seglab export: error: {error}", file=sys.stderr)
        return 2
    out = args.out or f"{args.grades.removesuffix('.csv')}-{args.format}.csv"
    write_table(table, out)  # text cleaned, formulas neutralised, atomically
    say(f"{len(table) - 1} students written to {out} ({args.format})")
    return 0


def _entry_test(args: argparse.Namespace) -> int:
    import random
    from pathlib import Path

    from seglab.course import entry_test
    from seglab.course.roster import read_roster
    from seglab.course.spreadsheet import say, write_bytes

    bank = entry_test.load_bank(args.bank)
    if args.format == "moodle":
        out = Path(args.out or "entry-test.xml")
        write_bytes(out, entry_test.moodle_xml(bank))
        questions = entry_test.all_questions(bank)
        say(f"{len(questions)} questions in {len(bank.topics)} categories written to {out}: import them into "
            "Moodle's question bank (Moodle XML format)")
        return 0
    _require_extra("entry-test build --format pdf")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1000, 10000)
    roster = read_roster(args.roster) if args.roster else None
    variants = entry_test.make_variants(bank, args.variants, seed, roster)
    if args.pass_mark:
        entry_test.parse_pass(args.pass_mark, len(variants[0].questions))  # a mistake stops before printing
    out = Path(args.out or "entry-test.pdf")
    entry_test.write_pdf(variants, out, pass_mark=args.pass_mark or "")
    key, key_csv = entry_test.write_key(variants, out.with_name(out.stem + "-key.json"), seed=seed, bank=bank)
    say(f"{len(variants)} variants (seed {seed}, {len(variants[0].questions)} questions each) written to {out}; "
        f"answer key in {key} and {key_csv}")
    return 0


def _entry_test_grade(args: argparse.Namespace) -> int:
    from pathlib import Path

    from seglab.course import entry_test
    from seglab.course.spreadsheet import say

    results = entry_test.grade_answers(args.answers, entry_test.read_key(args.key))
    out = Path(args.out or f"{args.answers.removesuffix('.csv')}-results.csv")
    table, passed, moodle = entry_test.write_grades(results, args.pass_mark, out, item_name=args.item)
    count = sum(1 for r in results if r.score >= entry_test.parse_pass(args.pass_mark, r.maximum) - 1e-9)
    say(f"{len(results)} students graded, {count} passed (pass mark {args.pass_mark}): {table}; pass list "
        f"{passed}; Moodle grade import {moodle}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from seglab.models import trainable_models
    from seglab.training.recipes import DATA

    parser = argparse.ArgumentParser(
        prog="seglab",
        description="Semantic segmentation with deep learning: the course package's command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="versions, compute device and threads")
    info.add_argument("--speed", action="store_true",
                      help="also measure this machine's training speed (about 10 s): the notebooks state their "
                           "times at a measured speed, to scale to yours")
    info.set_defaults(func=_info)

    train = sub.add_parser("train", help="train a model on the synthetic or the nuclei data",
                           description="Train a model with the course's recipe (seglab.training.recipes.Recipe: every "
                                       "option below from --data to --weight-map is one of its fields).")
    train.add_argument("--model", choices=trainable_models(), default="unet", help="default: %(default)s")
    _add_recipe_options(train)
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    train.add_argument("--amp", choices=["auto", "on", "off", "bf16", "fp16"], default="auto",
                       help="mixed precision: auto = on for CUDA, off elsewhere; on = bf16 where supported, else fp16")
    train.add_argument("--checkpoint", help="where to save (default runs/MODEL-DATA.pt)")
    train.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("evaluate", help="per-class IoU of a checkpoint on validation data")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--data", choices=DATA, help="default: the data it was trained on")
    evaluate.add_argument("--size", type=int)
    evaluate.add_argument("--n-val", type=int)
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(func=_evaluate)

    release = sub.add_parser("release", help="(tutors) write the student notebooks, or the whole student kit",
                             description="Write notebooks/ from solutions/; with --kit, build the student kit "
                                         "(notebooks, wheel, README) in a folder and a zip. Run it in the "
                                         "repository root.")
    release.add_argument("--source", default="solutions", help="solution notebooks (default: solutions)")
    release.add_argument("--target", default="notebooks", help="student notebooks (default: notebooks)")
    release.add_argument("--kit", metavar="OUT", help="build the student kit in folder OUT and OUT.zip")
    release.add_argument("--wheel-url", default="", metavar="URL",
                         help="where you publish the kit's wheel: notebooks on Google Colab install it from there")
    release.set_defaults(func=_release)

    check = sub.add_parser("check", help="(students) re-run a notebook in a fresh kernel and list its exercises",
                           description="Re-run NOTEBOOK top to bottom in a fresh kernel and print every graded "
                                       "exercise with its points from the public checks. Hidden checks run at "
                                       "grading.")
    check.add_argument("notebook", help="your notebook, e.g. notebooks/01_convolution_arithmetic.ipynb")
    check.add_argument("--zip", action="store_true", help="also write a submission zip (SHA-256 in its name)")
    check.add_argument("--out", help="folder for the zip (default: beside the notebook)")
    check.add_argument("--full", action="store_true", help="run training cells at full size (default: shortened)")
    check.add_argument("--timeout", type=float, default=300, help="seconds per cell (default 300)")
    check.add_argument("--no-progress", action="store_true", help="no progress bar")
    check.set_defaults(func=_check)

    grading = sub.add_parser("grade", help="(tutors) grade submissions into a CSV table; merge hand grading or shards",
                             description="Grade a class (run), merge the filled hand-grading sheet into the grades "
                                         "(manual), or join the CSVs of shards graded on several machines (merge).")
    actions = grading.add_subparsers(dest="action", required=True)
    grade = actions.add_parser("run", help="grade a submitted notebook or a folder of them into a CSV table",
                               description="Grade every submission in a fresh sandboxed kernel into OUT (one row per "
                                           "student and exercise), write the sheet of answers to grade by hand "
                                           "beside it, and merge what is filled in there.")
    grade.add_argument("submissions", help="a notebook, a folder of <student>.ipynb, a zip, or nbgrader's submitted/")
    grade.add_argument("--out", default="grades.csv")
    grade.add_argument("--timeout", type=float, default=60, help="seconds per cell (default 60)")
    grade.add_argument("--total-timeout", type=float, default=900, help="seconds per notebook (default 900)")
    grade.add_argument("--workers", type=int, default=1, help="submissions graded in parallel")
    grade.add_argument("--solutions", default="solutions", help="solution notebooks with the official checks")
    grade.add_argument("--sandbox", choices=["bwrap", "none"], default="bwrap" if sys.platform == "linux" else "none",
                       help="run each submission in bubblewrap (default on Linux) or without isolation")
    grade.add_argument("--memory", type=_bytes, default="6G",
                       help="memory of each submission's whole sandbox, all its processes together (default 6G)")
    grade.add_argument("--resume", action="store_true",
                       help="keep the students already in --out and grade only the others")
    grade.add_argument("--seed", type=int, default=None,
                       help="with each student's name, chooses the cases (default: fresh ones every batch)")
    grade.add_argument("--full", action="store_true",
                       help="run training cells at full size (default: the tests' small budget, SEGLAB_QUICK=1; "
                            "no check depends on training)")
    grade.add_argument("--all-cells", action="store_true",
                       help="run every cell (default: only the cells that answers and checks depend on; figures, "
                            "widgets and training runs are skipped)")
    grade.add_argument("--shard", type=_shard, metavar="I/N",
                       help="grade only share I of N of the students (a job array); join with seglab grade merge")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade.add_argument("--feedback", metavar="DIR",
                       help="write a feedback page per student and notebook to DIR/<student>/")
    grade.add_argument("--manual", metavar="SHEET",
                       help="the hand-grading sheet to write and merge (default: OUT-manual.csv)")
    grade.set_defaults(func=_grade, name="grade run")

    manual = actions.add_parser("manual", help="merge a filled hand-grading sheet into the grades",
                                description="Check the filled sheet (numbers between 0 and the maximum, known "
                                            "students and questions) and merge its points and comments into OUT; "
                                            "a sheet with mistakes changes nothing and lists every line to fix.")
    manual.add_argument("sheet", help="the sheet that seglab grade run wrote (OUT-manual.csv), filled in")
    manual.add_argument("--out", default="grades.csv", help="the grades CSV to merge into (default grades.csv)")
    manual.add_argument("--solutions", default="solutions", help="solution notebooks (which questions, their maxima)")
    manual.add_argument("--feedback", metavar="DIR",
                        help="rewrite the feedback pages in DIR with the tutor's points and comments")
    manual.set_defaults(func=_grade_manual, name="grade manual")

    merge = actions.add_parser("merge", help="join the CSVs of shards graded with --shard I/N",
                               description="Join the grades CSVs of shards (seglab grade run --shard I/N), and their "
                                           "hand-grading sheets into one beside OUT.")
    merge.add_argument("csvs", nargs="+", help="the shards' grades CSVs")
    merge.add_argument("--out", default="grades.csv")
    merge.set_defaults(func=_grade_merge, name="grade merge")


    similarity = sub.add_parser("similarity", help="(tutors) pairs of students with very similar answers",
                                description="Compare the students' answer cells (names, comments and formatting "
                                            "ignored; the released stubs and seglab's own code excluded) and list "
                                            "the pairs above a threshold, with the matching cells side by side.")
    similarity.add_argument("submissions", help="a folder of <student>.ipynb, or nbgrader's submitted/")
    similarity.add_argument("--threshold", type=float, default=0.8, help="share of code in common (default 0.8)")
    similarity.add_argument("--notebooks", default="notebooks", help="the released notebooks (their stubs never count)")
    similarity.add_argument("--out", default="similarity.html", help="the report (default similarity.html)")
    similarity.set_defaults(func=_similarity)

    export = sub.add_parser("export", help="(tutors) grades for a learning platform: Moodle, or one row per student",
                            description="Write the grades CSV of `seglab grade` as Moodle's grade import reads it "
                                        "(--format moodle) or one row per student (--format wide).")
    export.add_argument("grades", help="the CSV that `seglab grade` wrote")
    export.add_argument("--format", choices=["moodle", "wide"], default="moodle")
    export.add_argument("--out", help="default: GRADES-FORMAT.csv")
    export.add_argument("--id-column", default="Username",
                        help="(moodle) the user column's header; map it to username, ID number or email at import")
    export.add_argument("--roster", help="(moodle) CSV with columns student, moodle: seglab's names to Moodle's")
    export.set_defaults(func=_export)

    entry = sub.add_parser("entry-test", help="(tutors) the entry test from the tutor's bank: Moodle XML or paper",
                           description="Build the entry test from the tutor's question bank (build), or score the "
                                       "answers typed in from the paper test (grade).")
    entry_actions = entry.add_subparsers(dest="action", required=True)
    build = entry_actions.add_parser("build", help="Moodle XML for the question bank, or a printable PDF",
                                     description="Write the entry test: Moodle XML for the question bank (a category "
                                                 "per topic), or a printable PDF of variants with its answer key.")
    build.add_argument("--format", choices=["moodle", "pdf"], default="moodle")
    build.add_argument("--bank", default="solutions/entry_test", help="the bank (default: solutions/entry_test)")
    build.add_argument("--out", help="default: entry-test.xml or entry-test.pdf (the key beside it)")
    build.add_argument("--variants", type=int, default=4, help="(pdf) number of variants (default 4)")
    build.add_argument("--seed", type=int, help="(pdf) makes the test reproducible (default: a new one, printed)")
    build.add_argument("--roster", help="(pdf) CSV with a column student (and moodle): one variant per student, "
                                        "in seat order")
    build.add_argument("--pass", dest="pass_mark", metavar="MARK", help="(pdf) the pass mark to print, e.g. 60%%")
    build.set_defaults(func=_entry_test, name="entry-test build")

    scoring = entry_actions.add_parser("grade", help="score the paper test's typed-in answers",
                                       description="Score the answers typed in from the paper entry test.")
    scoring.add_argument("answers", help="CSV with columns student, variant, q1, q2, ... (a letter or a number)")
    scoring.add_argument("--key", required=True, help="the key that build --format pdf wrote (entry-test-key.json)")
    scoring.add_argument("--pass", dest="pass_mark", required=True, metavar="MARK",
                         help="the pass mark: a percentage (60%%) or points")
    scoring.add_argument("--out", help="results CSV (default: ANSWERS-results.csv); -passed.csv and -moodle.csv "
                                       "beside it")
    scoring.add_argument("--item", default="Entry test", help="the Moodle grade item's column name")
    scoring.set_defaults(func=_entry_test_grade, name="entry-test grade")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, OSError, _MissingExtra) as error:  # bad input: a message, not a traceback
        print(f"seglab {getattr(args, 'name', args.command)}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
