"""What users of lm-eval, Inspect and sacrebleu type, and the harness's way to say it.

One table (:data:`HABITS`) feeds two places: the CLI's answer to an option it does not have
(:func:`unknown_option_message`: ``harness run --log_samples`` says where the harness keeps each
example's output, rather than guessing ``--sample``, which changes the evaluated examples) and
the page ``docs/habits.md`` (:func:`markdown_table`; a test keeps the two equal).

Spelling guesses are offered only for near misses of an option's own name (at most two edits,
``--limt`` -> ``--limit``), and never for a habit of another tool: there the meaning, not the
spelling, decides. Non-goals: accepting the other tools' flags as aliases (their meanings differ
in details that matter for a published number: lm-eval's ``--limit`` takes a fraction too,
sacrebleu's ``--paired-bs`` names the baseline first), and habits of config keys.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Habit:
    tool: str  # lm-eval | Inspect | sacrebleu
    flags: tuple[str, ...]  # as that tool spells them, the long form first
    there: str  # what the flag does in that tool
    here: str  # the harness's way (Markdown-safe: code in backticks)


HABITS: tuple[Habit, ...] = (
    # lm-evaluation-harness (lm_eval)
    Habit("lm-eval", ("--model_args",), "arguments of the model backend (`pretrained=NAME,...`)",
          "`--model PATH_OR_HUB_ID` names the model itself; other model settings are keys of a `models:` entry "
          "(`device`, `dtype`, `revision`, ...), e.g. `--set 'models.*.dtype=bfloat16'`"),
    Habit("lm-eval", ("--tasks",), "the tasks to evaluate",
          "`--benchmark NAME` (repeatable; `harness benchmarks` lists the named test sets)"),
    Habit("lm-eval", ("--log_samples",), "save every example's input, output and score",
          "always done: `OUTDIR/predictions/*.jsonl`, one row per example with its per-example `scores`"),
    Habit("lm-eval", ("--samples",), "evaluate only the examples with these ids",
          "`--limit N` (the first N test examples of every benchmark) or `--limit N --sample` (a seeded random N)"),
    Habit("lm-eval", ("--output_path",), "where results go", "`-o OUTDIR` / `--output OUTDIR`"),
    Habit("lm-eval", ("--num_fewshot",), "few-shot examples in the prompt",
          "no few-shot prompting; a decoder-only model's prompt is `prompt_template:` in its `models:` entry"),
    Habit("lm-eval", ("--batch_size",), "examples per forward pass",
          "a decoder parameter: `--decoder greedy:batch_size=32` (`harness plugins greedy` lists the others)"),
    Habit("lm-eval", ("--device",), "the device to run on",
          "`device:` of a `models:` entry: `--set 'models.*.device=cuda'`"),
    Habit("lm-eval", ("--gen_kwargs",), "generation settings (temperature, max tokens...)",
          "decoder parameters: `--decoder sample:temperature=0.7,top_p=0.9`, `--decoder greedy:max_new_tokens=64`"),
    Habit("lm-eval", ("--seed",), "random seeds of the run", "`--seeds 0,1,2`: one cell per seed, compared over seeds"),
    Habit("lm-eval", ("--use_cache",), "cache model outputs between runs",
          "always on: finished cells are reused from `OUTDIR/cells/`, fine-tuned checkpoints from `--cache-dir`"),
    Habit("lm-eval", ("--include_path",), "load task definitions from a directory",
          "a plugin package with a `harness` entry point (docs/plugins.md), or benchmark files by path: "
          "`--benchmark parallel_text:source=a.en,reference=a.de`"),
    Habit("lm-eval", ("--check_integrity", "--show_config"), "check or print the configuration",
          "`harness validate` (same options as `run`): checks everything without loading a model, prints the grid"),
    Habit("lm-eval", ("--trust_remote_code",), "allow model code from the Hub",
          "`trust_remote_code: true` in that `models:` entry"),
    Habit("lm-eval", ("--apply_chat_template",), "wrap prompts in the model's chat template",
          "not supported; `prompt_template:` of a `models:` entry gives the prompt text"),
    # Inspect (inspect eval)
    Habit("Inspect", ("--log-dir",), "where logs go", "`-o OUTDIR` / `--output OUTDIR`"),
    Habit("Inspect", ("--epochs",), "repeat each sample N times", "`--seeds 0,1,2`: one cell per seed"),
    Habit("Inspect", ("--temperature",), "sampling temperature", "`--decoder sample:temperature=0.7`"),
    Habit("Inspect", ("--max-tokens",), "most tokens to generate", "`--decoder greedy:max_new_tokens=64`"),
    Habit("Inspect", ("--model-args", "-M"), "arguments of the model provider",
          "keys of a `models:` entry, e.g. `--set 'models.*.dtype=bfloat16'`"),
    Habit("Inspect", ("--task-config", "-T"), "arguments of the task",
          "benchmark parameters: `--benchmark NAME:KEY=VALUE,...`"),
    Habit("Inspect", ("--sample-id",), "evaluate only these samples", "`--limit N` (with `--sample`: a seeded random N)"),
    Habit("Inspect", ("--max-samples", "--max-connections"), "samples or requests run in parallel",
          "the executor: `executor: {name: ray, params: {num_cpus: 1}}` runs cells side by side"),
    Habit("Inspect", ("--display",), "how progress is shown", "`-q` / `--quiet` (only errors and the summary)"),
    # sacrebleu
    Habit("sacrebleu", ("--input", "-i"), "the system output files to score",
          "`harness score REF -i SYS ...` scores files you already have; `harness run` decodes with a model"),
    Habit("sacrebleu", ("--test-set", "-t"), "a named WMT/IWSLT test set",
          "`--benchmark wmt14-en-de` (a preset) or `--benchmark sacrebleu_testset:test_set=wmt14,langpair=en-de`"),
    Habit("sacrebleu", ("--language-pair", "-l"), "the test set's language pair",
          "the `langpair` parameter: `--benchmark sacrebleu_testset:test_set=wmt14,langpair=en-de`"),
    Habit("sacrebleu", ("--metrics", "-m"), "the metrics to compute",
          "`--metric bleu --metric chrf` (repeatable; parameters as `--metric bleu:tokenize=intl`)"),
    Habit("sacrebleu", ("--tokenize", "-tok"), "BLEU's tokenizer", "`--metric bleu:tokenize=intl`"),
    Habit("sacrebleu", ("--paired-bs", "--paired-ar"), "paired significance tests against the first system",
          "always run: every system is tested against its baseline (`baseline:`; the report names the deciding "
          "test); resamples are the reporter's `bootstrap_samples` and `ar_trials`"),
    Habit("sacrebleu", ("--paired-bs-n", "--paired-ar-n"), "resamples of the paired tests",
          "reporter parameters: `reporters: [{name: html, params: {bootstrap_samples: 1000, ar_trials: 10000}}]`"),
    Habit("sacrebleu", ("--format", "-f"), "the output format (json, text)",
          "every run writes `metrics.csv`, `results.json` and the reports; `harness leaderboard ... -o lb.csv`"),
    Habit("sacrebleu", ("--score-only", "-b"), "print only the score",
          "`metrics.csv` holds one score per row; `harness.load_results(OUTDIR)` reads it as a DataFrame"),
)


def _norm(flag: str) -> str:
    return flag.lower().replace("_", "-")


def habit_for(flag: str) -> Habit | None:
    """The habit an unknown option comes from (``--log_samples``, ``--log-samples``), or None."""
    want = _norm(flag.split("=", 1)[0])
    return next((h for h in HABITS if any(_norm(f) == want for f in h.flags)), None)


def _edits(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (adjacent swaps count as one edit)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def near_miss(flag: str, options: Iterable[str]) -> str | None:
    """An option the user most likely misspelt: at most two edits away (one for names of four letters
    or fewer), and the only one that close. Never a different word that merely looks alike."""
    want = _norm(flag.split("=", 1)[0]).lstrip("-")
    if len(want) < 3:
        return None
    limit = 1 if len(want) <= 4 else 2
    close = sorted({o for o in options if o.startswith("--") and _edits(want, _norm(o).lstrip("-")) <= limit})
    return close[0] if len(close) == 1 else None


def unknown_option_message(flag: str, command: str, options: Iterable[str]) -> str:
    """What the CLI says for an option ``command`` does not have."""
    flag = flag.split("=", 1)[0]
    habit = habit_for(flag)
    if habit is not None:
        return (f"{command} has no option {flag}. In {habit.tool}, {flag} means: {habit.there}. Here: "
                f"{_plain(habit.here)} (docs/habits.md lists such habits)")
    guess = near_miss(flag, options)
    hint = f"; did you mean {guess}?" if guess else ""
    return f"{command} has no option {flag}{hint} (see {command} --help)"


def _plain(text: str) -> str:
    return text.replace("`", "")


def markdown_table() -> str:
    """The table of docs/habits.md, generated from :data:`HABITS`."""
    lines = ["| tool | you type | it means there | in the harness |", "|---|---|---|---|"]
    for h in HABITS:
        flags = " ".join(f"`{f}`" for f in h.flags)
        lines.append(f"| {h.tool} | {flags} | {h.there} | {h.here} |")
    return "\n".join(lines) + "\n"
