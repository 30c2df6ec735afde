"""The CLI's answer to another tool's option (issue 22): lm-eval's ``--log_samples`` got click's
"did you mean --sample?", a flag that changes which examples are evaluated. An option of lm-eval,
Inspect or sacrebleu now gets the harness's way from one table (harness/habits.py, also
docs/habits.md); a guess is only a near miss of the command's own spelling."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.habits import HABITS, markdown_table, near_miss, unknown_option_message

ROOT = Path(__file__).resolve().parents[1]


def cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env)


def test_an_lm_eval_habit_gets_the_harness_way_not_a_flag_with_another_meaning():
    r = cli("run", "configs/quickstart.yaml", "--log_samples")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("error: harness run has no option --log_samples. In lm-eval, --log_samples means: save every "
                        "example's input, output and score. Here: always done: OUTDIR/predictions/*.jsonl, one row per "
                        "example with its per-example scores (docs/habits.md lists such habits)\n")
    assert "--sample" not in r.stderr.replace("--log_samples", "")


@pytest.mark.parametrize("flag", ["--samples", "--seed", "-i", "--paired-bs", "--output_path", "--tasks"])
def test_other_habits_are_answered_from_the_table(flag):
    r = cli("validate", flag)
    assert r.returncode == 2
    habit = next(h for h in HABITS if flag in h.flags)
    assert r.stderr.startswith(f"error: harness validate has no option {flag}. In {habit.tool}, {flag} means: ")
    assert "did you mean" not in r.stderr


def test_only_a_near_miss_of_an_own_option_is_suggested():
    assert cli("run", "--limt", "3").stderr == "error: harness run has no option --limt; did you mean --limit? " \
                                               "(see harness run --help)\n"
    options = ["--limit", "--sample", "--seeds", "--set", "--threads", "--output"]
    assert near_miss("--log_samples", options) is None  # click's difflib offered --sample
    assert near_miss("--thraeds", options) == "--threads"  # a swap is one edit
    assert near_miss("--frobnicate", options) is None
    assert unknown_option_message("--frobnicate", "harness run", options) == \
        "harness run has no option --frobnicate (see harness run --help)"


def test_docs_habits_page_is_the_table():
    page = (ROOT / "docs" / "habits.md").read_text(encoding="utf-8")
    assert markdown_table() in page
    flags = [f for h in HABITS for f in h.flags]
    assert len(flags) == len(set(flags)), "a flag in two rows"
