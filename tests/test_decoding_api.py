"""harness.decoding, the public API for decoder authors: its documented example decoder runs
through a real config using public names only, and every exported name resolves and is documented."""
from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import textwrap
import types

import pytest

import harness.decoding as decoding
from harness.testing import SOURCES, run_config, write_translation_files

# what a decoder author imports besides harness.decoding and harness.api: the hook marker and pydantic
ALLOWED_IMPORTS = {"harness.api", "harness.decoding", "harness.hookspecs", "pydantic", "torch"}


def example_source() -> str:
    """The example decoder of harness.decoding's docstring (the indented block after 'Example')."""
    doc = decoding.__doc__
    block = doc[doc.index("\nExample:"):].split("::\n", 1)[1]
    return textwrap.dedent(block)


def example_module() -> types.ModuleType:
    module = types.ModuleType("top_k_example")
    exec(compile(example_source(), "<harness.decoding example>", "exec"), module.__dict__)
    return module


def test_the_example_imports_only_public_names():
    imported = []
    for node in ast.walk(ast.parse(example_source())):
        if isinstance(node, ast.ImportFrom):
            assert node.module in ALLOWED_IMPORTS, node.module
            imported += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= ALLOWED_IMPORTS
    assert ("harness.decoding", "run_search") in imported  # the example really builds on the API
    underscored = [name for _, name in imported if name.startswith("_")]
    assert underscored == []
    # the example's file stays short enough to read at once
    assert len(example_source().strip().splitlines()) <= 60


@pytest.mark.parametrize("kind", ["marian", "gpt2"])  # gpt2: the prompt is the prefix the rules see
def test_example_decoder_at_top_k_1_gives_greedys_outputs_and_scores(kind, tmp_path, request):
    src, ref = write_translation_files(tmp_path)
    model = {"path": str(request.getfixturevalue(f"tiny_{kind}"))}
    if kind == "gpt2":
        model["prompt_template"] = "{source} ="
    config = {"name": "t", "models": [model],
              "benchmarks": [{"name": "parallel_text", "params": {"source": str(src), "reference": str(ref)}}],
              "decoders": [{"name": "greedy", "params": {"max_new_tokens": 8, "min_new_tokens": 4}},
                           {"name": "top_k", "label": "top1",
                            "params": {"top_k": 1, "temperature": 0.7, "max_new_tokens": 8, "min_new_tokens": 4}},
                           {"name": "top_k", "label": "top20",
                            "params": {"top_k": 20, "temperature": 2.0, "max_new_tokens": 8, "min_new_tokens": 4}}],
              "metrics": ["chrf"]}
    results = run_config(config, tmp_path / "out", plugins=[example_module()])
    by_label = {cell["decoder"]: results.predictions(cell["key"]) for cell in results.cells}
    greedy, top1, top20 = by_label["greedy"], by_label["top1"], by_label["top20"]
    assert [p["source"] for p in top1] == SOURCES
    assert [p["output"] for p in top1] == [p["output"] for p in greedy]
    assert [p["score"] for p in top1] == pytest.approx([p["score"] for p in greedy], abs=1e-5)
    # a wide, hot top-k draws something else for at least one sentence (a random tiny model is
    # close to uniform over its 60 words): the example really samples
    assert [p["output"] for p in top20] != [p["output"] for p in greedy]

    # the token ids too (min_new_tokens: the tiny GPT-2 would end every sentence at once)
    from harness.api import CellContext
    from harness.engines.load import load_generation_model
    from harness.models.spec import ModelSpec
    from harness_plugins.decoders.greedy import Greedy

    gm = load_generation_model(ModelSpec(**{**model, "device": "cpu"}))
    ctx = CellContext(seed=0, workdir=tmp_path, cache_dir=tmp_path)
    example = example_module()
    ours = example.TopK(example.TopKParams(top_k=1, max_new_tokens=8, min_new_tokens=4)).decode(gm, SOURCES, ctx)
    theirs = Greedy(Greedy.Params(max_new_tokens=8, min_new_tokens=4)).decode(gm, SOURCES, ctx)
    assert [h[0].tokens for h in ours] == [h[0].tokens for h in theirs]
    assert all(len(h[0].tokens) > 4 for h in ours)


def test_importing_harness_decoding_does_not_import_torch():
    code = ("import sys, harness.decoding as d\n"
            "print(sorted(m for m in ('torch', 'transformers', 'harness_plugins') if m in sys.modules))\n"
            "d.SearchParams\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # the parameter models are torch-free too: a plugin may subclass them at module level
    assert out.splitlines() == ["[]", "[]"]


@pytest.mark.parametrize("name", decoding.__all__)
def test_every_public_name_resolves_and_has_its_own_docstring(name):
    assert not name.startswith("_")
    obj = getattr(decoding, name)
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert doc and doc.strip(), f"{name} has no docstring"
    if inspect.isclass(obj):  # not the signature a dataclass writes when the docstring is missing
        assert not doc.startswith(f"{obj.__name__}("), f"{name} has only the dataclass's generated docstring"


def test_unknown_names_fail_like_any_module_attribute():
    with pytest.raises(AttributeError, match="has no attribute 'beam_serch'"):
        decoding.beam_serch  # noqa: B018
    assert set(decoding.__all__) <= set(dir(decoding))


def test_the_type_checking_imports_and_the_docs_list_the_same_names():
    """The lazy table, the imports type checkers read and the docs' table are kept by hand: they agree."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    tree = ast.parse((root / "harness" / "decoding" / "__init__.py").read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))
    typed = {(node.module, a.name) for node in ast.walk(block) if isinstance(node, ast.ImportFrom)
             for a in node.names}
    assert typed == {(module, name) for name, module in decoding._LOCATIONS.items()}
    docs = (root / "docs" / "plugins.md").read_text()
    assert [n for n in decoding._LOCATIONS if f"`{n}" not in docs] == []
