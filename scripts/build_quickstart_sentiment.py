"""Generate the quickstart's small sentiment data set (configs/data/sentiment-*.tsv).

Short movie-review sentences built from templates, with negation so that a bag of words is
not enough ("not good" is negative). It exists to exercise the classification path offline in
seconds; it says nothing about real sentiment benchmarks (use SST-2 for that: see
configs/bert-mask-study.yaml). Output is committed; re-run only to change it.
"""
from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = ["the film", "this movie", "the plot", "the acting", "the script", "the ending", "the soundtrack",
            "the director's work", "the story", "the cast", "the dialogue", "the pacing"]
POSITIVE = ["wonderful", "moving", "brilliant", "funny", "gripping", "charming", "beautiful", "clever",
            "delightful", "powerful", "fresh", "touching"]
NEGATIVE = ["dull", "boring", "clumsy", "predictable", "tedious", "bland", "awful", "messy", "shallow",
            "forgettable", "lazy", "painful"]
FRAMES = ["{s} is {a}.", "{s} was {a}.", "i found {s} {a}.", "honestly, {s} is {a}.", "{s} feels {a} throughout.",
          "overall {s} is quite {a}."]
NEG_FRAMES = ["{s} is not {a}.", "{s} was never {a}.", "i did not find {s} {a}."]


def examples(rng: random.Random):
    rows = []
    for s in SUBJECTS:
        for a in POSITIVE:
            rows.append((rng.choice(FRAMES).format(s=s, a=a), "positive"))
            rows.append((rng.choice(NEG_FRAMES).format(s=s, a=a), "negative"))
        for a in NEGATIVE:
            rows.append((rng.choice(FRAMES).format(s=s, a=a), "negative"))
            rows.append((rng.choice(NEG_FRAMES).format(s=s, a=a), "positive"))
    rng.shuffle(rows)
    return rows


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "configs" / "data"
    out.mkdir(parents=True, exist_ok=True)
    rows = examples(random.Random(13))
    splits = {"test": rows[:120], "dev": rows[120:180], "train": rows[180:]}
    for name, part in splits.items():
        text = "sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in part)
        (out / f"sentiment-{name}.tsv").write_text(text, encoding="utf-8")
        print(f"wrote {out / f'sentiment-{name}.tsv'} ({len(part)} rows)")


if __name__ == "__main__":
    main()
