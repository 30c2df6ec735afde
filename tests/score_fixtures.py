"""A shared task written by the project: a test set with three references and many systems.

``write_shared_task(dir)`` writes the WMT metrics-task layout ``<testset>.hyp.<SYSTEM>.<lang>``
for ``n_systems`` systems, three references ``<testset>.ref.{A,B,C}.de`` and a source
``<testset>.src.en``. Sentences are composed from the word lists below (German, with an English
source built from the same choices); the references are paraphrases of each other (synonyms,
word order), and each system is the first reference edited by seeded drops, swaps and
substitutions at its own rate, so the systems differ in quality by construction and some pairs
differ on few segments. Nothing here is copied from a corpus.
"""
from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = [("ein Hund", "a dog"), ("eine Frau", "a woman"), ("zwei Kinder", "two children"),
            ("ein alter Mann", "an old man"), ("die Katze", "the cat"), ("ein Mädchen", "a girl"),
            ("drei Männer", "three men"), ("ein Junge", "a boy")]
VERBS = [("läuft", "runs"), ("spielt", "plays"), ("sitzt", "sits"), ("wartet", "waits"), ("steht", "stands"),
         ("tanzt", "dances")]
PLACES = [("auf der Wiese", "on the meadow"), ("im Park", "in the park"), ("am Strand", "on the beach"),
          ("vor dem Haus", "in front of the house"), ("in der Küche", "in the kitchen"),
          ("neben dem Auto", "next to the car"), ("unter einem Baum", "under a tree")]
EXTRAS = [("", ""), ("mit einem Ball", "with a ball"), ("in der Sonne", "in the sun"), ("am Abend", "in the evening"),
          ("mit Freunden", "with friends")]
SYNONYMS = {"läuft": ["rennt", "geht"], "Wiese": ["Weide", "Rasen"], "Mann": ["Herr", "Mann"],
            "Kinder": ["Kids", "Kleinen"], "Strand": ["Ufer", "Meer"], "Haus": ["Gebäude", "Heim"],
            "wartet": ["harrt", "steht"], "Küche": ["Kochnische", "Küche"], "Auto": ["Wagen", "Fahrzeug"],
            "Baum": ["Ahorn", "Busch"], "Ball": ["Fußball", "Spielball"], "Abend": ["Nachmittag", "Feierabend"],
            "Freunden": ["Bekannten", "Kumpels"], "sitzt": ["hockt", "ruht"], "spielt": ["tobt", "turnt"]}
NOISE = ["heute", "sehr", "auch", "dort", "schnell", "ganz", "wieder", "noch"]


def sentences(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (German, English) pairs composed from the word lists."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        (s, es), (v, ev), (p, ep), (x, ex) = (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(PLACES),
                                              rng.choice(EXTRAS))
        de = " ".join(w for w in (s[0].upper() + s[1:], v, p, x) if w) + "."
        en = " ".join(w for w in (es[0].upper() + es[1:], ev, ep, ex) if w) + "."
        out.append((de, en))
    return out


def paraphrase(sentence: str, k: int) -> str:
    """Reference ``k`` (1, 2) of a sentence: synonym ``k-1`` of each word that has one; every
    second sentence also moves its place phrase forward (German verb-second word order)."""
    words = [SYNONYMS[w.rstrip(".")][k - 1] + ("." if w.endswith(".") else "") if w.rstrip(".") in SYNONYMS else w
             for w in sentence.split()]
    return " ".join(words)


def edit(sentence: str, rate: float, rng: random.Random) -> str:
    """A system's translation: each word dropped, swapped with its neighbour or replaced at ``rate``."""
    words = sentence.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        r = rng.random()
        if r < rate / 3 and len(words) > 2:
            i += 1  # dropped
            continue
        if r < 2 * rate / 3 and i + 1 < len(words):
            out += [words[i + 1], words[i]]
            i += 2
            continue
        out.append(rng.choice(NOISE) if r < rate else words[i])
        i += 1
    return " ".join(out)


def write_shared_task(directory: Path, n_systems: int = 20, n_segments: int = 40, testset: str = "newstest2019",
                      seed: int = 0) -> dict:
    """Write the layout into ``directory``; returns {"systems": [names], "references": [paths], "source": path}."""
    directory.mkdir(parents=True, exist_ok=True)
    pairs = sentences(n_segments, seed)
    refs = {"A": [de for de, _ in pairs], "B": [paraphrase(de, 1) for de, _ in pairs],
            "C": [paraphrase(de, 2) for de, _ in pairs]}
    paths = []
    for name, lines in refs.items():
        p = directory / f"{testset}.ref.{name}.de"
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(p)
    src = directory / f"{testset}.src.en"
    src.write_text("\n".join(en for _, en in pairs) + "\n", encoding="utf-8")
    names = []
    for k in range(n_systems):
        rng = random.Random(1000 + k)
        rate = 0.02 + 0.4 * k / max(n_systems - 1, 1)
        name = f"sys{k:02d}-{'abcdefghijklmnopqrstuvwxyz'[k % 26]}"
        lines = [edit(de, rate, rng) for de in refs["A"]]
        (directory / f"{testset}.hyp.{name}.de").write_text("\n".join(lines) + "\n", encoding="utf-8")
        names.append(name)
    return {"systems": names, "references": paths, "source": src}
