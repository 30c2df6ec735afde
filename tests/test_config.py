"""Config validation: each mistake gives one located error; sweeps expand into the grid."""
from __future__ import annotations

import textwrap

import pytest

from harness.experiment.config import apply_override
from harness.experiment.load import load_experiment
from harness.errors import ConfigError, ConfigErrors
from harness.experiment.yamlio import load_yaml_text


@pytest.fixture
def workdir(tmp_path, translation_files, tiny_marian):
    (tmp_path / "model").symlink_to(tiny_marian, target_is_directory=True)
    return tmp_path


def write(workdir, text):
    path = workdir / "exp.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


GOOD = """\
name: t
seeds: [0, 1]
models:
  - path: ./model
benchmarks:
  - name: parallel_text
    label: toy
    params: {source: test.en, reference: test.de}
decoders:
  - name: greedy
    params: {max_new_tokens: [4, 8, 16]}
"""


def errors_of(path, overrides=()):
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        load_experiment(path, list(overrides))
    return str(info.value).splitlines()


def test_grid_expands_sweeps_and_seeds(workdir):
    resolved = load_experiment(write(workdir, GOOD))
    cells = resolved.cells()
    assert len(cells) == 3 * 2
    assert [c.decoder.label for c in cells[::2]] == [
        "greedy[max_new_tokens=4]", "greedy[max_new_tokens=8]", "greedy[max_new_tokens=16]"]
    assert {c.seed for c in cells} == {0, 1}
    assert [m.label for m in resolved.metrics_for("translation")] == ["bleu", "chrf", "ter"]
    assert cells[0].labels() == {"model": "model", "benchmark": "toy", "strategy": "none",
                                 "decoder": "greedy[max_new_tokens=4]", "seed": 0}


def test_two_swept_keys_make_a_product(workdir):
    text = GOOD.replace("{max_new_tokens: [4, 8, 16]}", "{max_new_tokens: [4, 8], batch_size: [1, 2]}")
    labels = [c.label for c in load_experiment(write(workdir, text)).components["decoders"]]
    assert labels == ["greedy[max_new_tokens=4,batch_size=1]", "greedy[max_new_tokens=4,batch_size=2]",
                      "greedy[max_new_tokens=8,batch_size=1]", "greedy[max_new_tokens=8,batch_size=2]"]


def test_relative_paths_resolve_against_the_config_dir(workdir):
    bench = load_experiment(write(workdir, GOOD)).components["benchmarks"][0]
    assert bench.params.source == str(workdir / "test.en")


@pytest.mark.parametrize("mutation, expected", [
    (("seeds: [0, 1]", "seeds: [0, 1]\nmodls: []"),
     ["exp.yaml:3: modls: unknown key 'modls'; did you mean 'models'? Allowed keys: baseline, benchmarks,"]),
    (("name: greedy\n", "name: gredy\n"),
     ["exp.yaml:10: decoders[0].name: unknown decoder 'gredy'; did you mean 'greedy'? Allowed:"]),
    (("{max_new_tokens: [4, 8, 16]}", "{max_new_tokens: 0}"),
     ["exp.yaml:11: decoders[0].params.max_new_tokens: Input should be greater than or equal to 1 (got 0)"]),
    (("{max_new_tokens: [4, 8, 16]}", "{max_new_tokens: [4, 0]}"),
     ["decoders[0].params.max_new_tokens: Input should be greater than or equal to 1 (got 0) (in sweep max_new_tokens=0)"]),
    (("{max_new_tokens: [4, 8, 16]}", "{max_new_tokens: many}"),
     ["decoders[0].params.max_new_tokens: Input should be a valid integer, unable to parse string as an integer (got 'many')"]),
    (("{max_new_tokens: [4, 8, 16]}", "{max_new_token: 4}"),
     ["decoders[0].params.max_new_token: unknown key 'max_new_token'; did you mean 'max_new_tokens'? Allowed keys: "]),
    (("source: test.en", "source: missing.en"),
     ["exp.yaml:8: benchmarks[0].params.source: file not found: ", "missing.en"]),
    (("  - path: ./model", "  - path: ./nomodel"),
     ["exp.yaml:4: models[0]: model directory not found: "]),
    (("  - path: ./model", "  - path: ./model\n    dtype: float8"),
     ["models[0].dtype: Input should be 'auto', 'float32', 'float16', 'bfloat16' or 'int8' (got 'float8')"]),
    (("  - path: ./model", "  - path: ./model\n    device: gpu"),
     ["models[0].device: unknown device 'gpu'; allowed: auto, cpu, cuda, cuda:N, mps"]),
    (("seeds: [0, 1]", "seeds: 3"), ["exp.yaml:2: seeds: Input should be a valid list (got 3)"]),
    (("seeds: [0, 1]", "seeds: [1, 1]"), ["seeds: seeds repeat: [1, 1]"]),
    (("seeds: [0, 1]", "seeds: []"), ["seeds: List should have at least 1 item after validation, not 0"]),
    (("name: t\n", "name: t\nname: u\n"), ["exp.yaml:2: name: duplicate key (first given on line 1)"]),
    (("name: t\n", "name: 'a b'\n"), ["exp.yaml:1: name: String should match pattern"]),
    (("seeds: [0, 1]", "seeds: [0, 1\n"), ["exp.yaml:", "malformed YAML"]),
    (("name: t\n", "name: t\nbaseline: {decoder: beam}\n"),
     ["baseline.decoder: no decoder labelled 'beam'. Allowed: greedy[max_new_tokens=16], greedy[max_new_tokens=4]"]),
    (("name: t\n", "name: !!python/object/apply:os.system ['echo hi']\n"),
     ["exp.yaml:1: malformed YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"]),
    (("decoders:", "  - name: parallel_text\n    label: toy\n    params: {source: test.en, reference: test.en}\ndecoders:"),
     ["exp.yaml:5: benchmarks: two entries are labelled 'toy'; give one a distinct `label:`"]),
])
def test_each_mistake_names_file_line_key_and_allowed_values(workdir, mutation, expected):
    old, new = mutation
    assert old in GOOD
    lines = errors_of(write(workdir, GOOD.replace(old, new, 1)))
    assert len(lines) == 1, lines
    for part in expected:
        assert part in lines[0], lines[0]


def test_not_a_model_directory(workdir):
    (workdir / "empty").mkdir()
    lines = errors_of(write(workdir, GOOD.replace("./model", "./empty")))
    assert "models[0]: " in lines[0] and "is not a model directory (no config.json in it)" in lines[0]


def test_hub_ids_are_not_checked_offline(workdir):
    """validate checks a config offline; `run` refuses an uncached Hub id (tests/test_hostile_inputs.py)."""
    resolved = load_experiment(write(workdir, GOOD.replace("./model", "Helsinki-NLP/opus-mt-en-de")))
    assert resolved.experiment.models[0].path == "Helsinki-NLP/opus-mt-en-de"
    assert resolved.experiment.models[0].local is False


@pytest.mark.parametrize("text, expected", [
    ("", "an experiment must be a YAML mapping (name:, models:, benchmarks:, ...), got an empty file"),
    ("- a\n- b\n", "an experiment must be a YAML mapping (name:, models:, benchmarks:, ...), got a list"),
])
def test_config_must_be_a_mapping(workdir, text, expected):
    path = workdir / "exp.yaml"
    path.write_text(text)
    assert errors_of(path) == [f"{path}: {expected}"]


def test_set_overrides(workdir):
    path = write(workdir, GOOD)
    resolved = load_experiment(path, ["decoders.0.params.max_new_tokens=[2, 3]", "seeds=[7]"])
    assert [c.label for c in resolved.components["decoders"]] == ["greedy[max_new_tokens=2]", "greedy[max_new_tokens=3]"]
    assert resolved.experiment.seeds == [7]
    assert "--set decoders.5.name=x: decoders: index 5 out of range (the list has 1 items)" in errors_of(
        path, ["decoders.5.name=x"])[0]
    assert "--set nonsense: expected KEY.PATH=VALUE" in errors_of(path, ["nonsense"])[0]
    # overrides are validated like the file itself
    assert "decoders[0].params.max_new_tokens: Input should be greater than or equal to 1 (got -1)" in errors_of(
        path, ["decoders.0.params.max_new_tokens=-1"])[0]


def test_override_creates_missing_mapping_keys():
    raw = load_yaml_text("a: {b: 1}\n", "x")
    apply_override(raw, "a.c.d=true")
    assert raw == {"a": {"b": 1, "c": {"d": True}}}


def test_models_pair_only_with_benchmarks_of_their_task(workdir, tiny_bert):
    (workdir / "bert").symlink_to(tiny_bert)
    (workdir / "cls.tsv").write_text("sentence\tlabel\na good movie\tpositive\na bad movie\tnegative\n")
    text = GOOD.replace("  - path: ./model\n", "  - path: ./model\n  - path: ./bert\n").replace(
        "decoders:", "  - name: text_classification\n    label: sent\n"
        "    params: {train: cls.tsv, test: cls.tsv}\ndecoders:")
    cells = load_experiment(write(workdir, text)).cells()
    pairs = {(c.model.display, c.benchmark.label, c.decoder.label if c.decoder else "-") for c in cells}
    assert pairs == {("model", "toy", "greedy[max_new_tokens=4]"), ("model", "toy", "greedy[max_new_tokens=8]"),
                     ("model", "toy", "greedy[max_new_tokens=16]"), ("bert", "sent", "-")}


def test_strategies_and_decoders_can_be_scoped_to_benchmarks(workdir):
    text = GOOD.replace("decoders:", "  - name: parallel_text\n    label: other\n"
                        "    params: {source: test.en, reference: test.de}\ndecoders:").replace(
        "    params: {max_new_tokens: [4, 8, 16]}",
        "    params: {max_new_tokens: 4}\n    benchmarks: [toy]\n  - name: greedy\n    params: {max_new_tokens: 9}\n"
        "    benchmarks: [other]")
    cells = load_experiment(write(workdir, text)).cells()
    assert {(c.benchmark.label, c.decoder.label, c.decoder.params.max_new_tokens) for c in cells} == {
        ("toy", "greedy", 4), ("other", "greedy", 9)}  # one label per benchmark: allowed
    lines = errors_of(write(workdir, text.replace("benchmarks: [other]", "benchmarks: [othr]")))
    assert "decoders[1].benchmarks[0]: no benchmark labelled 'othr'; did you mean 'other'? Allowed: other, toy" in lines[0]
    lines = errors_of(write(workdir, text.replace("    benchmarks: [other]\n", "")))
    assert lines[0].endswith("decoders: two entries are labelled 'greedy'; give one a distinct `label:`")


def test_alias_bombs_are_refused_quickly(workdir):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8))
    path = workdir / "exp.yaml"
    path.write_text(GOOD + bomb)
    # counted on the event stream: refused at the alias that crosses the limit, with its key and line
    assert errors_of(path) == [f"{path}:16: e[7]: anchors/aliases expand the document to more than 100,000 values; "
                               "allowed: at most 100,000"]


def test_third_party_params_get_strict_numbers_and_seed_ranges_by_field_name():
    """Any plugin's Params: a field named seed / *_seed is kept in numpy's range even when typed
    plain int, and NaN or a boolean is refused for every number field."""
    from pydantic import Field, ValidationError

    from harness.params import Params

    class Theirs(Params):
        shuffle_seed: int = 0
        temperature: float = Field(1.0, ge=0)
        steps: int | None = None

    for values, message in (({"shuffle_seed": 2**32}, "seed 4294967296 is out of range; allowed: an integer in "
                                                       "0..4294967295 (what numpy's random generators accept)"),
                            ({"temperature": float("nan")}, "Input should be a finite number"),
                            ({"steps": True}, "expected a number, got the boolean true; allowed: an integer (or null)")):
        with pytest.raises(ValidationError) as info:
            Theirs.model_validate(values)
        assert info.value.errors()[0]["msg"].removeprefix("Value error, ") == message
    assert Theirs.model_validate({"shuffle_seed": 2**32 - 1, "temperature": 0, "steps": 3}).steps == 3
