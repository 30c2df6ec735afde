"""--set / --unset: wildcards, unsetting, and errors that name the argument the user typed."""
from __future__ import annotations

import textwrap

import pytest

from harness.experiment.load import load_experiment
from harness.errors import ConfigError, ConfigErrors
from harness.experiment.overrides import apply_all, parse_set, parse_unset
from harness.experiment.yamlio import load_yaml_text

CONFIG = """\
name: t
models:
  - path: ./model
benchmarks:
  - name: parallel_text
    label: a
    params: {source: test.en, reference: test.de}
  - name: parallel_text
    label: b
    params: {source: test.en, reference: test.de, limit: 3}
decoders:
  - greedy
  - name: beam
    params: {num_beams: 4}
baseline: {decoder: beam}
"""


@pytest.fixture
def config(tmp_path, translation_files, tiny_marian):
    (tmp_path / "model").symlink_to(tiny_marian, target_is_directory=True)
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def errors(path, *edits):
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        load_experiment(path, list(edits))
    return str(info.value).splitlines()


def test_wildcard_sets_every_item(config):
    resolved = load_experiment(config, ["benchmarks.*.params.limit=2"])
    assert [b.params.limit for b in resolved.components["benchmarks"]] == [2, 2]


def test_wildcard_expands_bare_plugin_names(config):
    # `greedy` is shorthand for {name: greedy}; an edit inside it expands it rather than failing
    resolved = load_experiment(config, ["decoders.*.params.max_new_tokens=5"])
    assert [d.params.max_new_tokens for d in resolved.components["decoders"]] == [5, 5]
    assert [d.label for d in resolved.components["decoders"]] == ["greedy", "beam"]


def test_wildcard_over_mapping_keys():
    raw = load_yaml_text("a: {x: 1, y: 2}\n", "x")
    apply_all(raw, [parse_set("a.*=0")])
    assert raw == {"a": {"x": 0, "y": 0}}


def test_unset_restores_the_default(config):
    resolved = load_experiment(config, [parse_unset("benchmarks.1.params.limit")])
    assert [b.params.limit for b in resolved.components["benchmarks"]] == [None, None]
    resolved = load_experiment(config, [parse_unset("baseline")])
    assert resolved.experiment.baseline.decoder is None


def test_null_for_a_section_means_its_default(config):
    # refused before: `baseline: Input should be a valid dictionary`
    resolved = load_experiment(config, ["baseline=null", "decoders=null"])
    assert resolved.experiment.baseline.decoder is None
    assert [d.label for d in resolved.components["decoders"]] == ["greedy"]


def test_unset_then_set_applies_in_that_order(config):
    # unsets apply first, so "clear, then set" works whatever the order on the command line
    resolved = load_experiment(config, ["benchmarks.1.params.limit=1", parse_unset("benchmarks.1.params.limit")])
    assert resolved.components["benchmarks"][1].params.limit == 1
    # and an error in what an unset left behind names the unset
    assert errors(config, parse_unset("benchmarks.1.params")) == [
        "--unset benchmarks.1.params: benchmarks[1].params.source: required key is missing",
        "--unset benchmarks.1.params: benchmarks[1].params.reference: required key is missing"]


def test_set_errors_name_the_argument_not_a_line_of_the_file(config):
    assert errors(config, "decoders.1.params.num_beams=0") == [
        "--set decoders.1.params.num_beams=0: decoders[1].params.num_beams: "
        "Input should be greater than or equal to 1 (got 0)"]
    # a whole mapping given on the command line: the error inside it also names the --set
    assert errors(config, "decoders.1={name: beam, params: {num_beamz: 2}}")[0].startswith(
        "--set decoders.1={name: beam, params: {num_beamz: 2}}: decoders[1].params.num_beamz: unknown key")
    # a wildcard that hits a bad place names the wildcard argument
    assert errors(config, "benchmarks.*.params.limit=0")[0] == (
        "--set benchmarks.*.params.limit=0: benchmarks[0].params.limit: "
        "Input should be greater than or equal to 1 (got 0)")


def test_errors_elsewhere_still_name_the_file_line(config):
    config.write_text(CONFIG.replace("num_beams: 4", "num_beams: -4"))
    assert errors(config, "benchmarks.0.params.limit=2") == [
        f"{config}:14: decoders[1].params.num_beams: Input should be greater than or equal to 1 (got -4)"]


def test_an_error_at_an_untouched_key_stays_at_its_line(config):
    # the edit made the baseline dangle; the fix is at the baseline's line (or in the edit)
    assert errors(config, "decoders.1.label=b4") == [
        f"{config}:15: baseline.decoder: no decoder labelled 'beam'. Allowed: b4, greedy"]


@pytest.mark.parametrize("edit, expected", [
    ("nonsense", "--set nonsense: expected KEY.PATH=VALUE, e.g. decoders.0.params.num_beams=4 "
                 "(to remove a key, use --unset KEY.PATH)"),
    ("a..b=1", "--set a..b=1: empty key in key path (write KEY.PATH, e.g. decoders.0.params.num_beams)"),
    ("decoders.7.name=x", "--set decoders.7.name=x: decoders: index 7 out of range (the list has 2 items)"),
    ("decoders.x=1", "--set decoders.x=1: decoders: is a list; use an index 0..1 or '*', got 'x'"),
    ("name.x=1", "--set name.x=1: name: is a str, cannot set 'x' inside it"),
    ("strategies.0.name=x", "--set strategies.0.name=x: strategies: is not in the config (its default applies), "
                            "so it has no item '0'; set the whole list instead, e.g. --set 'strategies=[...]'"),
])
def test_malformed_set(config, edit, expected):
    assert errors(config, edit) == [expected]


def test_unset_of_a_missing_key_is_refused(config):
    assert errors(config, parse_unset("benchmarks.0.params.limt")) == [
        "--unset benchmarks.0.params.limt: benchmarks[0].params.limt: nothing to unset: no such key "
        "(keys here: source, reference)"]
    with pytest.raises(ConfigError, match="--unset a=1: expected KEY.PATH without a value"):
        parse_unset("a=1")


def test_cli_set_and_unset(config):
    from click.testing import CliRunner

    from harness.cli import main

    r = CliRunner().invoke(main, ["validate", str(config), "--set", "decoders.*.params.max_new_tokens=0"])
    assert r.exit_code == 2
    assert r.stderr.splitlines()[0] == ("error: --set decoders.*.params.max_new_tokens=0: "
                                        "decoders[0].params.max_new_tokens: Input should be greater than or equal "
                                        "to 1 (got 0)")
    r = CliRunner().invoke(main, ["validate", str(config), "--unset", "decoders.1", "--unset", "baseline"])
    assert r.exit_code == 0, r.output
    assert "  decoders: greedy\n" in r.output


def test_original_yaml_text_is_untouched(config):
    before = config.read_text()
    load_experiment(config, ["benchmarks.*.params.limit=2", parse_unset("baseline")])
    assert config.read_text() == before == textwrap.dedent(CONFIG)
