"""sacrebleu_testset without network.

sacrebleu fixes its cache directory ($SACREBLEU) when it is imported, so these tests run the
loader in a fresh interpreter with SACREBLEU pointing at a temporary directory, and with
urllib's urlopen replaced by a function that records the URL and fails as an unreachable
network does: no network call is ever attempted.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from bench_helpers import config_errors

SCRIPT = textwrap.dedent("""
    import json, sys, urllib.error, urllib.request
    calls = []
    def unreachable(url, *a, **k):
        calls.append(getattr(url, "full_url", url))
        raise urllib.error.URLError("[Errno 101] Network is unreachable")
    urllib.request.urlopen = unreachable

    from pathlib import Path
    from harness.api import CellContext
    from harness.errors import DataError
    from harness.plugins import default_plugins

    cls = default_plugins().get("benchmark", "sacrebleu_testset")
    out = {}
    for langpair in ("en-de", "de-en"):
        calls.clear()
        bench = cls(cls.Params(test_set="wmt14", langpair=langpair, limit=2))
        try:
            data = bench.load(CellContext(seed=0, workdir=Path("."), cache_dir=Path(".")))
            out[langpair] = {"examples": [[e.id, e.source, e.reference] for e in data.test], "meta": data.meta}
        except DataError as e:
            out[langpair] = {"error": str(e)}
        out[langpair]["calls"] = list(calls)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    cache = tmp_path_factory.mktemp("sacrebleu-cache")
    # a cached de-en: the text files sacrebleu writes after its first download
    (cache / "wmt14").mkdir()
    fields = {"src": ["Der Hund.", "Die Katze.", "Ein Haus."], "ref": ["The dog.", "The cat.", "A house."],
              "docid": ["d1"] * 3, "genre": ["news"] * 3, "origlang": ["de"] * 3}
    for field, lines in fields.items():
        (cache / "wmt14" / f"wmt14.de-en.{field}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "SACREBLEU": str(cache)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return cache, json.loads(proc.stdout.strip().splitlines()[-1])


def test_unreachable_network_gives_one_clear_error(offline_run):
    cache, out = offline_run
    res = out["en-de"]
    assert res["error"] == (
        f"sacrebleu test set wmt14 en-de is not cached in {cache / 'wmt14'} and could not be downloaded "
        "(URLError: <urlopen error [Errno 101] Network is unreachable>). The network may be unreachable: fetch it "
        "once where it is (`sacrebleu -t wmt14 -l en-de --echo src > test.src`, and `--echo ref > test.ref`), "
        "or use the parallel_text benchmark with local copies (source: test.src, reference: test.ref)")
    assert len(res["calls"]) == 1 and res["calls"][0].startswith("http")  # it tried sacrebleu's URL, via the mock


def test_cached_test_set_loads_without_download(offline_run):
    _, out = offline_run
    res = out["de-en"]
    assert res["calls"] == []
    assert res["examples"] == [["test-1", "Der Hund.", "The dog."], ["test-2", "Die Katze.", "The cat."]]
    assert res["meta"] == {"source": "sacrebleu:wmt14/de-en", "test_lines": 3, "references": 1}


def test_test_set_and_langpair_are_checked_at_validate(tmp_path):
    errs = config_errors(tmp_path, """\
        - name: sacrebleu_testset
          params: {test_set: wmt14, langpair: en-es}
        """)
    assert errs == [f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params.langpair: wmt14 has no language pair 'en-es'; "
                    "did you mean 'en-de'? Allowed: cs-en, de-en, en-cs, en-de, en-fr, en-hi, en-ru, fr-en, hi-en, ru-en"]
    errs = config_errors(tmp_path, """\
        - name: sacrebleu_testset
          params: {test_set: wmt41, langpair: en-de}
        """)
    assert len(errs) == 1
    assert errs[0].startswith(f"{tmp_path / 'exp.yaml'}:6: benchmarks[0].params.test_set: unknown sacrebleu test set "
                              "'wmt41'; did you mean ")
    assert " Allowed: " in errs[0] and "wmt14, " in errs[0] and "multi30k/2016" in errs[0]
