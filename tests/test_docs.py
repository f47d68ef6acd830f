"""The documentation and `-h` tell the truth: every flag's default is shown and reads right, every
relative link resolves, and the docs name every choice the code offers."""
import argparse
import re

import pytest

from conftest import REPO
from main import build_parser

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def documented_flags():
    """(command, flag, its help as -h prints it) for every optional flag of every command."""
    _, commands = build_parser()
    for name, parser in commands.choices.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and not action.required and action.default is not argparse.SUPPRESS:  # not -h
                yield name, action.option_strings[-1], formatter._expand_help(action)


def test_every_flag_in_help_shows_a_default_that_reads_right():
    unclear = [(name, flag, text[-60:]) for name, flag, text in documented_flags()
               if "default" not in text or re.search(r"default: (None|True|False|\[\]|\{\})", text)]
    assert not unclear, unclear


def test_a_switch_that_is_on_by_default_reads_as_on():
    helps = {(name, flag): text for name, flag, text in documented_flags()}
    assert helps["compare", "--no-blend"].endswith("(default: on)")
    assert helps["inspect-network", "--no-timing"].endswith("(default: on)")
    assert helps["train", "--temporal"].endswith("(default: 10.0)")
    assert helps["train", "--flip"].endswith("(default: off)")
    assert helps["build-dataset", "--video"].endswith("(default: none)")
    assert "(default: train's, 10.0)" in helps["sweep", "--temporal"]


def relative_links(path):
    """(file, anchor or None) of every link in a page that is not to another site."""
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
        if not re.match(r"[a-z]+:", target):
            file, _, anchor = target.partition("#")
            yield (path.parent / file if file else path), anchor or None


def anchors(page):
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    broken = [f"{file.relative_to(REPO)}{'#' + anchor if anchor else ''}" for file, anchor in relative_links(page)
              if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file))]
    assert not broken, broken


def test_the_docs_are_split_by_task_and_the_readme_is_short():
    assert len(DOCS) >= 10
    assert len((REPO / "README.md").read_text().splitlines()) <= 220


def test_the_docs_explain_every_score_in_the_registry_and_every_one_runs_can_test():
    from metrics import METRICS

    _, commands = build_parser()
    (metric,) = [a for a in commands.choices["runs"]._actions if "--metric" in a.option_strings]
    glossary = (REPO / "docs" / "metrics.md").read_text()
    missing = [name for name in [*metric.choices, *METRICS] if f"`{name}`" not in glossary]
    assert not missing, missing
    uncited = [name for name, entry in METRICS.items() if entry.reference.split(";")[0].split(",")[0] not in glossary]
    assert not uncited, uncited  # the glossary cites every paper the registry names


def test_the_new_words_and_the_old_flags_set_the_same_thing():
    # --clip-frames (frames per clip) and --stride (between clips) are the words -h and the docs use;
    # -pool and --step stay, and run folders keep the names they were written with.
    _, commands = build_parser()
    for argv in (["--clip-frames", "5", "--stride", "2"], ["-pool", "5", "--step", "2"], ["--pool", "5", "--step", "2"]):
        parsed = commands.choices["train"].parse_args(argv)
        assert (parsed.pool, parsed.step) == (5, 2)
    from cli.train_flags import as_typed

    assert as_typed({"pool": 5}) == "--pool 5"
