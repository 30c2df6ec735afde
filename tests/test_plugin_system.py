"""The plugin system: built-ins and third-party plugins arrive the same way and are usable from YAML."""
from __future__ import annotations

import importlib.metadata
import json
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import hookspecs
from harness.api import BASES, Decoder
from harness.experiment.load import load_experiment
from harness.errors import HarnessError, UnknownPluginError
from harness.params import Params
from harness.plugins import BUILTIN_DISTRIBUTION, HOOK_FOR_KIND, PluginSet, default_plugins
from harness.registry import Registry
from harness.run.runner import run_experiment

from conftest import loading

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "harness-example-plugin"


def builtin_plugin_modules() -> set[str]:
    mods = set()
    for f in (ROOT / "plugins").rglob("*.py"):
        if f.name.startswith("_"):
            continue
        rel = f.relative_to(ROOT / "plugins").with_suffix("")
        mods.add("harness_plugins." + ".".join(rel.parts))
    return mods


def test_every_builtin_module_is_an_entry_point_of_the_harness_distribution():
    eps = {ep.value for ep in importlib.metadata.entry_points(group="harness")
           if ep.dist and ep.dist.name == BUILTIN_DISTRIBUTION}
    assert eps == builtin_plugin_modules()


def test_every_hook_has_a_builtin_implementation_and_every_kind_a_hook():
    specs = {name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)}
    assert specs == set(HOOK_FOR_KIND.values())
    plugins = default_plugins()
    for kind in BASES:
        assert plugins.registry(kind).names(), f"no built-in {kind}"


def test_every_hook_is_documented_with_its_arguments():
    doc = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        args = ", ".join(inspect.signature(fn).parameters)
        assert f"### {name}({args})" in doc, f"docs/plugins.md lacks a heading for {name}({args})"


@pytest.mark.parametrize("info", list(default_plugins()), ids=lambda i: f"{i.kind}:{i.name}")
def test_every_registered_plugin_conforms(info):
    cls = info.cls
    assert issubclass(cls, BASES[info.kind]) and cls.kind == info.kind
    assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.name), cls.name
    assert cls.description, f"{cls.name} has no description"
    assert issubclass(cls.Params, Params)
    assert cls.Params.model_config.get("extra") == "forbid"
    if info.kind in ("benchmark", "metric"):
        assert cls.task in ("translation", "classification")
    for fname, field in cls.Params.model_fields.items():
        assert field.description or fname in {"lowercase", "normalized", "no_punct", "case_sensitive"}, \
            f"{cls.name}.{fname} has no description"


def test_registry_refuses_duplicates_and_suggests_names():
    reg = Registry("decoder")

    class A(Decoder):
        name = "beam"

    class B(Decoder):
        name = "beam"

    reg.register(A)
    with pytest.raises(HarnessError, match="two decoder plugins are named 'beam'"):
        reg.register(B)
    with pytest.raises(UnknownPluginError) as info:
        reg.get("bean")
    assert str(info.value) == "unknown decoder 'bean'; did you mean 'beam'? Allowed: beam"
    with pytest.raises(HarnessError, match="is not a subclass of Decoder"):
        reg.register(int)


def test_block_plugins_env(monkeypatch):
    monkeypatch.setenv("HARNESS_BLOCK_PLUGINS", "greedy")
    assert "greedy" not in PluginSet().registry("decoder")


def _example_module():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import harness_example_plugin
    finally:
        sys.path.remove(str(EXAMPLE))
    return harness_example_plugin


EXAMPLE_YAML = """\
name: third-party
models: [{path: ./model}]
benchmarks:
  - name: parallel_text
    label: toy
    params: {source: test.en, reference: test.de}
decoders: [copy_source]
metrics: [bleu, length_ratio]
reporters: []
"""


def test_third_party_plugin_registered_in_process_runs_from_yaml(tmp_path, translation_files, tiny_marian):
    (tmp_path / "model").symlink_to(tiny_marian)
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(EXAMPLE_YAML)
    plugins = PluginSet(extra=[_example_module()])
    assert plugins.registry("decoder").info("copy_source").module == "harness_example_plugin"
    summary = run_experiment(load_experiment(cfg, plugins=plugins), tmp_path / "out", quiet=True)
    values = {m["metric"]: m["value"] for m in summary.outcomes[0].metrics}
    src, ref = translation_files
    import sacrebleu

    expected = sacrebleu.corpus_bleu(src.read_text().splitlines(), [ref.read_text().splitlines()]).score
    assert values["bleu"] == pytest.approx(expected)
    assert values["length_ratio"] == pytest.approx(21 / 20)  # source words / reference words


@pytest.mark.slow
def test_third_party_package_installed_with_pip_is_discovered_and_runs(tmp_path, translation_files, tiny_marian):
    import shutil

    target = tmp_path / "site"
    shutil.copytree(EXAMPLE, tmp_path / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))  # pip builds in place
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(tmp_path / "src")], check=True, capture_output=True)
    env = loading({**os.environ, "PYTHONPATH": str(target)}, "harness-example-plugin")
    out = subprocess.run([sys.executable, "-m", "harness.cli", "plugins", "--kind", "decoder"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "copy_source  (harness-example-plugin: harness_example_plugin)" in out
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(EXAMPLE_YAML)
    run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "exp.yaml", "-o", "out", "-q"], env=env,
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    metrics = (tmp_path / "out" / "metrics.csv").read_text()
    assert ",copy_source,0,length_ratio,1.05," in metrics


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["validate", "CONFIG"]])
def test_light_commands_do_not_import_torch_or_transformers(argv, tmp_path, translation_files, tiny_marian):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(EXAMPLE_YAML.replace("[copy_source]", "[greedy]").replace(", length_ratio", ""))
    argv = [str(tmp_path / "exp.yaml") if a == "CONFIG" else a for a in argv]
    code = textwrap.dedent(f"""
        import sys
        from harness.cli import main
        try:
            main({argv!r})
        except SystemExit as e:
            assert e.code in (0, None), e.code
        heavy = sorted(m for m in ("torch", "transformers", "datasets", "sklearn") if m in sys.modules)
        print("HEAVY", heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


# ----------------------------------------------------------------------------- plugins that misbehave

FIXTURE_PACKAGES = ROOT / "tests" / "fixtures" / "plugins"


@pytest.fixture(scope="module")
def misbehaving_env(tmp_path_factory):
    """A site directory with two real pip-installed plugin packages: harness-broken-import (its
    module fails to import) and harness-misbehaving-plugins (a Params default breaking its own
    constraint; plugins of every kind returning the wrong things)."""
    import shutil

    work = tmp_path_factory.mktemp("misbehaving")
    sources = []
    for name in ("harness-broken-import", "harness-misbehaving-plugins"):
        shutil.copytree(FIXTURE_PACKAGES / name, work / name)  # pip would leave build/ and egg-info in the tree
        sources.append(str(work / name))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(work / "site"), *sources], check=True, capture_output=True)
    return loading({**os.environ, "PYTHONPATH": str(work / "site")}, "harness-broken-import",
                   "harness-misbehaving-plugins")


def harness_run(env, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True)


BROKEN_IMPORT_WARNING = (
    "warning: skipping plugin 'broken_import' from package harness-broken-import: its module harness_broken_import "
    "failed to import: ModuleNotFoundError: No module named 'harness_dependency_that_is_not_installed'. "
    "Block it with HARNESS_BLOCK_PLUGINS=harness-broken-import (or uninstall it) to silence this warning")
BAD_DEFAULT_WARNING = (
    "warning: skipping plugin 'bad_default' from package harness-misbehaving-plugins: registering it failed: "
    "HarnessError: decoder plugin 'zero_beams' (harness_misbehaving_plugins.bad_default): the default of "
    "Params.num_beams, 0, breaks its own constraint: Input should be greater than or equal to 1. "
    "Block it with HARNESS_BLOCK_PLUGINS=harness-misbehaving-plugins (or uninstall it) to silence this warning")


@pytest.mark.slow
def test_broken_plugins_are_skipped_with_one_warning_each_and_listed(misbehaving_env, tmp_path, translation_files,
                                                                      tiny_marian):
    res = harness_run(misbehaving_env, "plugins")
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == [BROKEN_IMPORT_WARNING, BAD_DEFAULT_WARNING]
    out = res.stdout
    assert "  greedy  (nlp-eval-harness: harness_plugins.decoders.greedy)" in out
    assert "  returns_strings  (harness-misbehaving-plugins: harness_misbehaving_plugins.bad_returns)" in out
    # all or nothing: the bad-default module's metric is skipped with its decoder
    assert "zero_beams  (" not in out and "bad_default_companion  (" not in out
    broken = out[out.index("broken (skipped; block with HARNESS_BLOCK_PLUGINS):"):].splitlines()
    assert broken[1].startswith("  broken_import  (harness-broken-import): its module harness_broken_import failed")
    assert broken[2].startswith("  bad_default  (harness-misbehaving-plugins): registering it failed: HarnessError: "
                                "decoder plugin 'zero_beams'")

    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(EXAMPLE_YAML.replace("[copy_source]", "[greedy]").replace(", length_ratio", ""))
    res = harness_run(misbehaving_env, "validate", "exp.yaml", cwd=tmp_path)
    assert res.returncode == 0 and res.stderr.splitlines() == [BROKEN_IMPORT_WARNING, BAD_DEFAULT_WARNING]
    # blocked as the warning says: silent
    env = {**misbehaving_env, "HARNESS_BLOCK_PLUGINS": "harness-broken-import,harness-misbehaving-plugins"}
    res = harness_run(env, "run", "exp.yaml", "-o", "out", "-q", cwd=tmp_path)
    assert res.returncode == 0 and res.stderr == ""
    # a config naming the refused decoder gets the usual unknown-plugin error
    res = harness_run(misbehaving_env, "validate", "exp.yaml", "--set", "decoders=[zero_beams]", cwd=tmp_path)
    assert res.returncode == 2 and "unknown decoder 'zero_beams'" in res.stderr
    assert ("(skipped as broken: 'broken_import' (harness-broken-import), 'bad_default' (harness-misbehaving-plugins); "
            "see `harness plugins`)") in res.stderr


BAD_RETURNS_YAML = """\
name: bad-returns
models: [{path: ./model, label: tiny}]
benchmarks:
  - {name: parallel_text, label: toy, params: {source: test.en, reference: test.de}}
  - {name: returns_list, label: listy}
strategies: [none, returns_none]
decoders: [{name: greedy, params: {max_new_tokens: 3}}, returns_strings]
metrics: [bleu, returns_float, returns_nan, raises]
reporters: [returns_str, markdown]
"""


@pytest.mark.slow
def test_wrong_return_values_fail_only_their_cell_metric_or_reporter_naming_the_plugin(
        misbehaving_env, tmp_path, translation_files, tiny_marian):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "exp.yaml").write_text(BAD_RETURNS_YAML)
    env = {**misbehaving_env, "HARNESS_BLOCK_PLUGINS": "harness-broken-import"}
    res = harness_run(env, "run", "exp.yaml", "-o", "out", "-q", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    cells = {(c["benchmark"], c["strategy"], c["decoder"]): c
             for c in json.loads((tmp_path / "out" / "manifest.json").read_text())["cells"]}
    pkg = "(harness-misbehaving-plugins)"
    assert cells["toy", "none", "returns_strings"]["error"] == (
        f"PluginReturnError: decoder 'returns_strings' {pkg} returned list[str] (item 0 is str); "
        "expected list[list[Hypothesis]]: one non-empty n-best list per source, best first")
    assert cells["toy", "returns_none", "greedy"]["error"] == (
        f"PluginReturnError: strategy 'returns_none' {pkg} returned NoneType; "
        "expected a ModelSpec (the input spec when nothing changes)")
    assert cells["listy", "none", "greedy"]["error"] == (
        f"PluginReturnError: benchmark 'returns_list' {pkg} returned list[Example]; "
        "expected BenchmarkData(task='translation', test=[Example, ...])")
    good = cells["toy", "none", "greedy"]
    assert good["status"] == "done"
    assert good["metric_errors"] == [
        f"metric 'returns_float' failed: PluginReturnError: metric 'returns_float' {pkg} returned float; "
        "expected MetricValue(value=<float>, signature=...)",
        f"metric 'returns_nan' is NaN (metric 'returns_nan' {pkg} returned NaN)",
        "metric 'raises' failed: KeyError: \"no such field: 'refs'\""]
    metrics = (tmp_path / "out" / "metrics.csv").read_text().splitlines()
    assert sorted(line.split(",")[5] for line in metrics[1:]) == ["bleu", "returns_nan"]
    assert ",returns_nan,,translation," in metrics[2]  # NaN: an empty value in metrics.csv
    assert (tmp_path / "out" / "predictions" / "tiny__toy__none__greedy__0.jsonl").exists()
    assert (f"failed: reporter 'returns_str' failed: PluginReturnError: reporter 'returns_str' {pkg} returned str; "
            "expected a list of the paths it wrote") in res.stderr
    assert (tmp_path / "out" / "report.md").exists()  # the other reporter still ran
    assert f"failed: tiny / toy / none / greedy / 0: metric 'returns_nan' is NaN" in res.stderr


def test_a_params_default_that_breaks_its_own_constraint_is_refused_naming_plugin_and_field():
    from pydantic import Field

    class BadParams(Params):
        num_beams: int = Field(0, ge=1)
        ok: str = "fine"

    class Bad(Decoder):
        name = "bad_beams"
        Params = BadParams

    with pytest.raises(HarnessError) as info:
        Registry("decoder").register(Bad)
    assert str(info.value) == (f"decoder plugin 'bad_beams' ({__name__}): the default of Params.num_beams, 0, breaks "
                               "its own constraint: Input should be greater than or equal to 1")

    class Required(Params):
        source: str  # required parameters have no default to check
        limit: int | None = Field(None, ge=1)

    class Fine(Decoder):
        name = "fine"
        Params = Required

    Registry("decoder").register(Fine)


def test_a_plugin_whose_hook_raises_is_skipped_whole_and_the_rest_loads(caplog):
    import types

    from harness.api import Metric

    class Half(Metric):
        name = "half_registered"

    mod = types.ModuleType("half_plugin")

    def register_metrics(register):
        register(Half)
        raise RuntimeError("forgot a dependency")

    mod.register_metrics = hookspecs.hookimpl(register_metrics)
    ps = PluginSet(extra=[mod])
    assert "half_registered" not in ps.registry("metric") and "bleu" in ps.registry("metric")
    [b] = ps.broken
    assert (b.name, b.error) == ("half_plugin", "registering it failed: RuntimeError: forgot a dependency")
    assert f"warning: {b.message}" in caplog.text


def test_a_misspelled_hook_skips_its_plugin_whole_with_one_warning_naming_it(caplog):
    """pluggy's check_pending(): a @hookimpl that is no hook would register nothing, silently."""
    import types

    from harness.api import Metric

    class Fine(Metric):
        name = "fine_metric"

    class Lost(Decoder):
        name = "lost_decoder"

    mod = types.ModuleType("misspelled_plugin")

    def register_metrics(register):
        register(Fine)

    def register_decoder(register):  # the hook is register_decoders
        register(Lost)

    mod.register_metrics = hookspecs.hookimpl(register_metrics)
    mod.register_decoder = hookspecs.hookimpl(register_decoder)
    ps = PluginSet(extra=[mod])
    [b] = ps.broken
    assert (b.name, b.error) == ("misspelled_plugin", "its @hookimpl register_decoder is not a harness hook "
                                                      "(did you mean register_decoders?)")
    # skipped as a whole, like a plugin whose registration fails: its valid hook registered nothing
    assert "fine_metric" not in ps.registry("metric") and "lost_decoder" not in ps.registry("decoder")
    assert "bleu" in ps.registry("metric") and "greedy" in ps.registry("decoder")
    assert [r.getMessage() for r in caplog.records] == [f"warning: {b.message}"]
    assert b.message.startswith("skipping plugin 'misspelled_plugin' from package (module misspelled_plugin): its "
                                "@hookimpl register_decoder is not a harness hook")


def test_a_hook_name_far_from_every_hook_is_answered_with_the_list_of_hooks():
    import types

    mod = types.ModuleType("odd_plugin")
    mod.provide_everything = hookspecs.hookimpl(lambda register: None)
    [b] = PluginSet(extra=[mod], warn=False).broken
    assert b.error == ("its @hookimpl provide_everything is not a harness hook (the hooks are "
                       + ", ".join(HOOK_FOR_KIND.values()) + ")")


@pytest.mark.parametrize("kind, hook", sorted(HOOK_FOR_KIND.items()))
def test_every_hook_spec_types_its_register_as_the_registry_of_its_kind(kind, hook):
    import typing

    hints = typing.get_type_hints(getattr(hookspecs, hook))
    assert hints == {"register": Registry[BASES[kind]], "return": type(None)}
    # what the plugin gets is that registry: register(cls) and register.register(cls) both add a class
    ps = PluginSet(use_entry_points=False, warn=False)
    assert isinstance(ps.registry(kind), Registry) and ps.registry(kind).base is BASES[kind]


def test_register_refuses_a_class_of_another_kind_naming_the_base():
    from harness.api import Metric

    class NotADecoder(Metric):
        name = "not_a_decoder"

    with pytest.raises(HarnessError, match="registered as a decoder is not a subclass of Decoder"):
        Registry("decoder").register(NotADecoder)


@pytest.mark.slow
def test_the_suite_passes_with_a_third_party_plugin_installed_that_uses_the_docs_names(tmp_path):
    """The docs' example plugin registers `length_ratio` and `copy_source`, names the tests' own
    plugins use too. Installed beside the harness, it must not change what the tests see."""
    import shutil

    shutil.copytree(EXAMPLE, tmp_path / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(tmp_path / "site"), str(tmp_path / "src")], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    env.pop("HARNESS_LOAD_PLUGINS", None)  # as a user's shell has it: every installed plugin loads
    listed = subprocess.run([sys.executable, "-m", "harness.cli", "plugins"], env=env, capture_output=True, text=True)
    assert "length_ratio  (harness-example-plugin" in listed.stdout, "the plugin really is installed"
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "test_metrics_plugin_api.py"), str(ROOT / "tests" / "test_example_scores.py")],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:]
