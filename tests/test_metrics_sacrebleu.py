"""bleu, chrf and ter give the numbers and signatures that sacrebleu's own command line prints
for the same files, with default and non-default parameters, and agree with its Python API."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.api import Example
from harness.plugins import default_plugins

REFS = ["Die Katze sitzt auf der Matte.", "Der Hund lief schnell zum großen Haus!",
        "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.", "Zwei Kinder spielen im Garten.",
        "Es regnet seit 3 Tagen in München.", "Sie kaufte 12 Äpfel und zwei Birnen.",
        "Das Wetter ist heute schön.", "Wir treffen uns um 8:30 Uhr am Bahnhof."]
HYPS = ["die Katze sitzt auf einer Matte .", "Der Hund rannte zum grossen Haus!",
        "Ein Mann mit orangem Hut starrt etwas an.", "Zwei Kinder spielen im Garten.",
        "Seit 3 Tagen regnet es in Muenchen.", "sie kaufte zwölf Äpfel und 2 Birnen",
        "Heute ist das Wetter schön.", "Treffen um 8:30 am Bahnhof."]

# (plugin, params, sacrebleu CLI arguments that mean the same)
CASES = [
    ("bleu", {}, ["-m", "bleu"]),
    ("chrf", {}, ["-m", "chrf"]),
    ("ter", {}, ["-m", "ter"]),
    ("bleu", {"tokenize": "intl", "lowercase": True}, ["-m", "bleu", "--tokenize", "intl", "--lowercase"]),
    ("bleu", {"tokenize": "char", "smooth_method": "floor"}, ["-m", "bleu", "--tokenize", "char", "--smooth-method", "floor"]),
    ("bleu", {"tokenize": "none", "smooth_method": "none"}, ["-m", "bleu", "--tokenize", "none", "--smooth-method", "none"]),
    ("chrf", {"word_order": 2}, ["-m", "chrf", "--chrf-word-order", "2"]),                      # chrF++
    ("chrf", {"word_order": 2, "lowercase": True, "beta": 1, "char_order": 4},
     ["-m", "chrf", "--chrf-word-order", "2", "--chrf-lowercase", "--chrf-beta", "1", "--chrf-char-order", "4"]),
    ("chrf", {"whitespace": True, "eps_smoothing": True}, ["-m", "chrf", "--chrf-whitespace", "--chrf-eps-smoothing"]),
    ("ter", {"normalized": True, "no_punct": True, "case_sensitive": True},
     ["-m", "ter", "--ter-normalized", "--ter-no-punct", "--ter-case-sensitive"]),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sacrebleu-files")
    (d / "ref.de").write_text("\n".join(REFS) + "\n", encoding="utf-8")
    (d / "hyp.de").write_text("\n".join(HYPS) + "\n", encoding="utf-8")
    return d


def sacrebleu_cli(files, args: list[str]):
    out = subprocess.run([sys.executable, "-m", "sacrebleu", str(files / "ref.de"), "-i", str(files / "hyp.de"),
                          *args, "-w", "6", "--format", "json"], capture_output=True, text=True, check=True, timeout=60)
    res = json.loads(out.stdout)
    return res if isinstance(res, list) else [res]


def ours(name, params):
    cls = default_plugins().get("metric", name)
    examples = [Example(id=str(i), source="-", reference=r) for i, r in enumerate(REFS)]
    return cls(cls.Params(**params)).compute(HYPS, examples)


@pytest.mark.parametrize("name,params,args", CASES, ids=[f"{c[0]}-{'-'.join(c[2][2:]) or 'default'}" for c in CASES])
def test_value_and_signature_equal_sacrebleu_cli(files, name, params, args):
    (cli,) = sacrebleu_cli(files, args)
    mv = ours(name, params)
    assert round(mv.value, 6) == pytest.approx(cli["score"], abs=1e-6)
    assert mv.signature == cli["signature"]


def test_all_three_defaults_in_one_cli_call(files):
    """The `sacrebleu REF -i HYP -m bleu chrf ter -b` numbers a user would compare against."""
    out = subprocess.run([sys.executable, "-m", "sacrebleu", str(files / "ref.de"), "-i", str(files / "hyp.de"),
                          "-m", "bleu", "chrf", "ter", "-b", "-w", "4"], capture_output=True, text=True, check=True,
                         timeout=60)
    cli = json.loads(out.stdout)
    assert [round(ours(n, {}).value, 4) for n in ("bleu", "chrf", "ter")] == pytest.approx(cli, abs=1e-4)
    assert 0 < cli[0] < 100 and 0 < cli[2] < 100  # a corpus that tests something: neither perfect nor empty


@pytest.mark.parametrize("name,params,args", CASES[:7], ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES[:7])])
def test_equal_python_api(name, params, args):
    import sacrebleu

    fn = {"bleu": sacrebleu.corpus_bleu, "chrf": sacrebleu.corpus_chrf, "ter": sacrebleu.corpus_ter}[name]
    api = fn(HYPS, [REFS], **params)
    assert ours(name, params).value == api.score


def test_details_and_edge_cases():
    bleu = ours("bleu", {})
    assert set(bleu.details) == {"precisions", "bp", "sys_len", "ref_len"} and len(bleu.details["precisions"]) == 4
    assert ours("ter", {}).details["edits"] > 0
    cls = default_plugins().get("metric", "bleu")
    same = [Example(id=str(i), source="-", reference=r) for i, r in enumerate(REFS)]
    assert cls(cls.Params()).compute(REFS, same).value == pytest.approx(100.0)  # sacrebleu: 100.00000000000004
    assert default_plugins().get("metric", "ter").higher_is_better is False
