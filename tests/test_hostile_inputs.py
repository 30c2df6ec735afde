"""The bad-input catalogue: every way a config or its data can be broken or hostile.

Each case asserts what the user sees: exit code 2, ``error:`` lines naming the file (and line or
key path) and what was expected, no traceback, and an existing output directory left exactly
as it was. Config problems are caught by ``validate`` and ``run`` alike; data problems
(misaligned or badly encoded files, empty segments, unknown labels, unloadable model configs)
by ``run`` before it takes the output directory's lock.

Security cases: YAML tags that would build Python objects, pickle payloads in ``.bin`` weights,
models shipping code without ``trust_remote_code``, and labels that try to escape the output
directory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import shared_data, tree_state
from harness.cli import main
from harness.plugins import default_plugins

SRC = "the cat sat on the mat\nthe dog ran to the house\na big red cat\n"
REF = "die katze sass auf der matte\nder hund lief zum haus\neine grosse rote katze\n"


def config(benchmark: str = "{name: parallel_text, label: toy, params: {source: src.txt, reference: ref.txt}}",
           models: str = "[{path: ./model}]", extra: str = "") -> str:
    return f"name: hostile\nmodels: {models}\nbenchmarks:\n  - {benchmark}\n{extra}"


@dataclass
class Case:
    id: str
    yaml: str | bytes
    expect: list[str]  # lines of stderr, "{d}" = the case's directory; "..." at the end = prefix match
    files: dict[str, bytes | str] = field(default_factory=dict)
    commands: tuple[str, ...] = ("validate", "run")
    needs: tuple[str, str] | None = None  # (kind, plugin) written by another engineer: skip until registered
    shared: tuple[str, ...] | None = None  # a file in ../shared/data, linked in as "shared"
    links: dict[str, str] = field(default_factory=dict)  # name -> symlink target (e.g. /dev/zero)
    fifos: tuple[str, ...] = ()  # named pipes to create (reading one would block forever)
    gpu_free: bool = False  # the case assumes this machine has no CUDA/MPS device: skipped where it has one


CASES = [
    Case("malformed_yaml", "name: x\nmodels: [{path: ./model}\nbenchmarks: []\n",
         ["error: {d}/exp.yaml:3: malformed YAML: while parsing a flow sequence expected ',' or ']', but got '<scalar>'"]),
    Case("duplicate_key", config() + "name: again\n",
         ["error: {d}/exp.yaml:5: name: duplicate key (first given on line 1); each key may appear once"]),
    Case("unknown_key_did_you_mean", config() + "seed: [1, 2]\n",
         ["error: {d}/exp.yaml:5: seed: unknown key 'seed'; did you mean 'seeds'? Allowed keys: baseline, benchmarks, ..."]),
    Case("unknown_plugin_param", config(extra="decoders: [{name: greedy, params: {max_new_token: 4}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.max_new_token: unknown key 'max_new_token'; did you mean "
          "'max_new_tokens'? Allowed keys: ..."]),
    Case("wrong_type", config() + "seeds: [0, one]\n",
         ["error: {d}/exp.yaml:5: seeds[1]: Input should be a valid integer, unable to parse string as an integer (got 'one'); "
          "allowed: an integer in 0..4294967295"]),
    Case("wrong_type_param", config(extra="decoders: [{name: greedy, params: {max_new_tokens: lots}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.max_new_tokens: Input should be a valid integer, unable to parse "
          "string as an integer (got 'lots'); allowed: an integer >= 1"]),
    Case("empty_decoders", config(extra="decoders: []\n"),
         ["error: {d}/exp.yaml:5: decoders: List should have at least 1 item after validation, not 0"]),
    Case("empty_grid_no_model_fits_the_task", config(models="[{path: ./classifier}]"),
         ["error: {d}/exp.yaml: the grid is empty: no model and strategy fit any benchmark's task (translation needs a "
          "seq2seq or causal model, classification an encoder); model 'classifier' (architectures: "
          "BertForSequenceClassification; model_type bert) was taken for a classifier: translation needs a seq2seq or "
          "causal model; if this one generates text, set kind: causal (decoder-only) or kind: seq2seq on its entry"]),
    Case("empty_sweep", config(extra="decoders: [{name: greedy, params: {max_new_tokens: []}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.max_new_tokens: an empty list sweeps over nothing"]),
    Case("unknown_plugin", config(extra="decoders: [gredy]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].name: unknown decoder 'gredy'; did you mean 'greedy'? Allowed: ..."]),
    Case("out_of_range", config(extra="decoders: [{name: greedy, params: {max_new_tokens: 0}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.max_new_tokens: Input should be greater than or equal to 1 (got 0)"]),
    # --- numbers that pydantic would let through: NaN/inf, booleans, integers too big for torch/numpy
    Case("nan_float_param", config(extra="decoders: [{name: beam, params: {length_penalty: .nan}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.length_penalty: Input should be a finite number (got nan); "
          "allowed: a finite number (or null)"], needs=("decoder", "beam")),
    Case("inf_float_param", config(extra="decoders: [{name: diverse_beam, params: {diversity_strength: .inf}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.diversity_strength: Input should be a finite number (got inf); "
          "allowed: a finite number >= 0.0"], needs=("decoder", "diverse_beam")),
    Case("minus_inf_in_a_sweep", config(extra="strategies: [{name: unmasked, params: {learning_rate: [1.0e-4, -.inf]}}]\n"),
         ["error: {d}/exp.yaml:5: strategies[0].params.learning_rate: Input should be a finite number (got -inf); "
          "allowed: a finite number >= 0 (in sweep learning_rate=-inf)"], needs=("strategy", "unmasked")),
    Case("bool_for_int_param", config(extra="decoders: [{name: beam, params: {num_beams: true}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.num_beams: expected a number, got the boolean true; "
          "allowed: an integer >= 1"], needs=("decoder", "beam")),
    Case("bool_for_model_length", config(models="[{path: ./model, max_source_length: false}]"),
         ["error: {d}/exp.yaml:2: models[0].max_source_length: expected a number, got the boolean false; "
          "allowed: an integer >= 1"]),
    Case("bool_seed", config() + "seeds: [true]\n",
         ["error: {d}/exp.yaml:5: seeds: expected a number, got the boolean true (item 0); "
          "allowed: an integer in 0..4294967295"]),
    Case("seed_1e23", config() + "seeds: [1.0e+23]\n",
         ["error: {d}/exp.yaml:5: seeds[0]: Input is too large for an integer (got 1e+23); "
          "allowed: an integer in 0..4294967295"]),
    Case("seed_above_numpy_range", config() + "seeds: [0, 4294967296]\n",
         ["error: {d}/exp.yaml:5: seeds[1]: Input should be less than or equal to 4294967295 (got 4294967296)"]),
    Case("plugin_seed_negative",
         config("{name: parallel_text, label: toy, params: {source: src.txt, reference: ref.txt, sample_seed: -1}}"),
         ["error: {d}/exp.yaml:4: benchmarks[0].params.sample_seed: Input should be greater than or equal to 0 (got -1)"]),
    Case("plugin_seed_1e23",
         config("{name: parallel_text, label: toy, params: {source: src.txt, reference: ref.txt, sample_seed: 1.0e+23}}"),
         ["error: {d}/exp.yaml:4: benchmarks[0].params.sample_seed: Input is too large for an integer (got 1e+23); "
          "allowed: an integer in 0..4294967295"]),
    Case("inf_for_an_int_limit",
         config("{name: parallel_text, label: toy, params: {source: src.txt, reference: ref.txt, limit: .inf}}"),
         ["error: {d}/exp.yaml:4: benchmarks[0].params.limit: Input should be a finite number (got inf); allowed: an "
          "integer >= 1 (or null)"]),
    Case("int_beyond_64_bits", config(extra="decoders: [{name: greedy, params: {max_new_tokens: 99999999999999999999}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.max_new_tokens: 99999999999999999999 does not fit in a 64-bit "
          "integer (largest 9223372036854775807); allowed: an integer >= 1"]),
    Case("num_beams_zero", config(extra="decoders: [{name: beam, params: {num_beams: 0}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.num_beams: Input should be greater than or equal to 1 (got 0)"],
         needs=("decoder", "beam")),
    Case("num_groups_not_dividing_num_beams",
         config(extra="decoders: [{name: diverse_beam, params: {num_beams: 4, num_groups: 3}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params: num_groups (3) must divide num_beams (4); allowed num_groups "
          "for num_beams=4: 1, 2, 4"], needs=("decoder", "diverse_beam")),
    Case("mask_prob_above_1",
         config("{name: text_classification, label: tc, params: {train: train.tsv, test: test.tsv}}",
                models="[{path: ./classifier}]", extra="strategies: [{name: input_mask, params: {mask_prob: 1.5}}]\n"),
         ["error: {d}/exp.yaml:5: strategies[0].params.mask_prob: Input should be less than or equal to 1 (got 1.5)"],
         files={"train.tsv": "text\tlabel\ngood movie\tpos\n", "test.tsv": "text\tlabel\nbad movie\tneg\n"},
         needs=("strategy", "input_mask")),
    Case("missing_file", config("{name: parallel_text, params: {source: nope.txt, reference: ref.txt}}"),
         ["error: {d}/exp.yaml:4: benchmarks[0].params.source: file not found: {d}/nope.txt"]),
    Case("model_dir_without_config", config(models="[{path: ./empty_dir}]"),
         ["error: {d}/exp.yaml:2: models[0]: {d}/empty_dir is not a model directory (no config.json in it)"],
         files={"empty_dir/README": "not a model"}),
    Case("model_path_is_a_file", config(models="[{path: ./weights.bin}]"),
         ["error: {d}/exp.yaml:2: models[0]: {d}/weights.bin is not a model directory (no config.json in it)"],
         files={"weights.bin": b"\0\1\2"}),
    Case("model_missing", config(models="[{path: ./no-such-model}]"),
         ["error: {d}/exp.yaml:2: models[0]: model directory not found: {d}/no-such-model"]),
    Case("config_is_a_list", "- name: x\n- models: []\n",
         ["error: {d}/exp.yaml: an experiment must be a YAML mapping (name:, models:, benchmarks:, ...), got a list"]),
    Case("config_is_empty", "",
         ["error: {d}/exp.yaml: an experiment must be a YAML mapping (name:, models:, benchmarks:, ...), got an empty file"]),
    Case("config_not_utf8", config().encode() + "description: caf\xe9\n".encode("cp1252"),
         ["error: {d}/exp.yaml: not UTF-8 text (invalid byte at offset ..."]),
    Case("python_object_tag", config() + "description: !!python/object/apply:os.system ['touch {d}/pwned']\n",
         ["error: {d}/exp.yaml:5: malformed YAML: could not determine a constructor for the tag "
          "'tag:yaml.org,2002:python/object/apply:os.system'"]),
    # --- values that only make sense for some models or machines: refused before any cell runs
    Case("device_cuda_without_cuda", config(models="[{path: ./model, device: cuda}]"),
         ["error: {d}/exp.yaml:2: models[0].device: device 'cuda' is not available: ..."], gpu_free=True),
    Case("device_cuda_3", config(models="[{path: ./model, device: 'cuda:3'}]"),
         ["error: {d}/exp.yaml:2: models[0].device: device 'cuda:3' is not available: ..."], gpu_free=True),
    Case("device_mps", config(models="[{path: ./model, device: mps}]"),
         ["error: {d}/exp.yaml:2: models[0].device: device 'mps' is not available: ..."], gpu_free=True),
    Case("source_length_beyond_positions", config(models="[{path: ./model, max_source_length: 4096}]"),
         ["error: {d}/exp.yaml:2: models[0].max_source_length: 4096 is longer than model 'model' can read: its position "
          "table has 128 entries (longer inputs fail with IndexError); allowed: an integer in 1..128"]),
    Case("new_tokens_beyond_positions", config(extra="decoders: [{name: greedy, params: {max_new_tokens: [8, 129]}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.max_new_tokens: 129 (in sweep max_new_tokens=129) is longer than "
          "model 'model' can generate: its position table has 128 entries (longer sequences fail with IndexError); "
          "allowed: an integer <= 128 for this model"]),
    Case("training_length_beyond_positions",
         config(extra="strategies: [{name: unmasked, params: {max_length: 512}}]\n"),
         ["error: {d}/exp.yaml:5: strategies[0].params.max_length: 512 is longer than model 'model' can read: its "
          "position table has 128 entries (longer sequences fail with IndexError); allowed: an integer <= 128 for "
          "this model"], needs=("strategy", "unmasked")),
    Case("num_beams_1e9", config(extra="decoders: [{name: beam, params: {num_beams: 1000000000}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.num_beams: one decoder step of 1,000,000,000 beams with model "
          "'model' (vocabulary 61) needs at least 1512.0 GB, more than this machine's ..."], needs=("decoder", "beam")),
    Case("causal_lm_new_tokens_beyond_positions",
         config(models="[{path: ./lm, prompt_template: '{source} =>'}]",
                extra="decoders: [{name: greedy, params: {max_new_tokens: 128}}]\n"),
         ["error: {d}/exp.yaml:5: decoders[0].params.max_new_tokens: 128 is longer than model 'lm' can generate: its "
          "position table has 128 entries (longer sequences fail with IndexError); allowed: an integer <= 127 for this "
          "model"]),
    Case("prompt_template_longer_than_positions",
         config(models="[{path: ./lm, prompt_template: '" + "word " * 130 + "{source}'}]",
                extra="decoders: [{name: greedy, params: {max_new_tokens: 8}}]\n"),
         ["error: {d}/exp.yaml:2: models[0].prompt_template: the prompt alone has at least 131 tokens, and model 'lm' "
          "reads at most 128 (its position table), leaving no room to generate; allowed: a template of fewer than 127 "
          "words"]),
    Case("nan_reporter_param", config(extra="reporters: [{name: html, params: {alpha: .NaN}}]\n"),
         ["error: {d}/exp.yaml:5: reporters[0].params.alpha: Input should be a finite number (got nan); allowed: a "
          "finite number > 0 and < 1"]),
    Case("bool_metric_param", config(extra="metrics: [{name: chrf, params: {char_order: true}}]\n"),
         ["error: {d}/exp.yaml:5: metrics[0].params.char_order: expected a number, got the boolean true; allowed: an "
          "integer >= 1"]),
    # --- paths that exist but are not files, and documents nested absurdly deep
    Case("data_path_is_a_directory", config("{name: parallel_text, params: {source: adir, reference: ref.txt}}"),
         ["error: {d}/exp.yaml:4: benchmarks[0].params.source: {d}/adir is a directory; allowed: a regular file"],
         files={"adir/x.txt": "x"}),
    Case("data_path_is_dev_zero", config("{name: parallel_text, params: {source: zero.txt, reference: ref.txt}}"),
         ["error: {d}/exp.yaml:4: benchmarks[0].params.source: {d}/zero.txt is a character device; allowed: a regular "
          "file"], links={"zero.txt": "/dev/zero"}),
    Case("data_path_is_a_fifo",
         config("{name: text_classification, params: {test: pipe.tsv, labels: [neg, pos]}}", models="[{path: ./classifier}]"),
         ["error: {d}/exp.yaml:4: benchmarks[0].params.test: {d}/pipe.tsv is a FIFO (named pipe); allowed: a regular "
          "file"], fifos=("pipe.tsv",), needs=("benchmark", "text_classification")),
    Case("data_path_is_a_symlink_loop", config("{name: parallel_text, params: {source: loop1, reference: ref.txt}}"),
         ["error: {d}/exp.yaml:4: benchmarks[0].params.source: {d}/loop1 cannot be read: Too many levels of symbolic "
          "links"], links={"loop1": "loop2", "loop2": "loop1"}),
    Case("yaml_nested_3000_deep", config() + "description: " + "[" * 3000 + "]" * 3000 + "\n",
         ["error: {d}/exp.yaml:5: description: mappings/lists nested more than 100 levels deep; allowed: at most 100"]),
    Case("model_config_json_nested_5000_deep", config(models="[{path: ./deep}]"),
         ["error: {d}/exp.yaml:2: models[0]: model 'deep': {d}/deep/config.json:2: JSON nested more than 100 levels "
          "deep; allowed: at most 100"],
         files={"deep/config.json": '{"model_type": "marian",\n "x": ' + "[" * 5000 + "]" * 5000 + "}"}),
    Case("model_dir_without_weights", config(models="[{path: ./noweights}]"),
         ["error: {d}/exp.yaml:2: models[0]: model 'noweights': {d}/noweights holds no weights (model.safetensors, "
          "model-*-of-*.safetensors or pytorch_model.bin); set init: random to build the architecture from config.json "
          "with seeded random weights, or point path: at a directory with weights"],
         files={"noweights/config.json": '{"model_type": "marian", "is_encoder_decoder": true}'}),
    Case("hub_id_offline_not_cached", config(models="[{path: nobody-h4/no-such-model}]"),
         ["error: {d}/exp.yaml:2: models[0]: Hub model 'nobody-h4/no-such-model' is not in the local Hugging Face "
          "cache and the Hub is switched off (HF_HUB_OFFLINE=1); download it once with network access "
          "(huggingface-cli download nobody-h4/no-such-model) or set path: to a local model directory"],
         commands=("run",)),
    # --- data, found by `run` before anything is written
    Case("misaligned_files", config(), ["error: {d}/exp.yaml:4: benchmarks[0].params.reference: benchmark 'toy': the "
                                        "test files are not aligned: src.txt (source) has 3 lines, ref.txt "
                                        "(reference) has 2 lines; ..."],  # (validate's check, before run's)
         files={"ref.txt": "eins\nzwei\n"}, commands=("run",)),
    Case("empty_line", config(), ["error: {d}/exp.yaml: benchmarks: 'toy': {d}/src.txt:2: empty source segment; remove it ..."],
         files={"src.txt": "the cat\n\na dog\n"}, commands=("run",)),
    Case("not_utf8_cp1252", config(),
         ["error: {d}/exp.yaml: benchmarks: 'toy': {d}/src.txt:2: not utf-8 text (byte 0xe9 at offset 11). If the file uses "
          "another encoding, name it with the benchmark's `encoding:` parameter (e.g. encoding: cp1252), or convert "
          "the file: iconv -f cp1252 -t utf-8 src.txt > src.utf8.txt"],
         files={"src.txt": "the cat\ncaf\xe9 noir\na dog\n".encode("cp1252")}, commands=("run",)),
    Case("not_utf8_rt_polarity",
         config("{name: parallel_text, label: rt, params: {source: shared, reference: shared}}"),
         ["error: {d}/exp.yaml: benchmarks: 'rt': {d}/shared:44: not utf-8 text (byte 0xf3 at offset 4645). ..."],
         shared=("rt_polarity", "rt-polarity.pos"), commands=("run",)),
    Case("label_not_in_training",
         config("{name: text_classification, label: tc, params: {train: train.tsv, test: test.tsv}}",
                models="[{path: ./classifier}]"),
         ["error: {d}/exp.yaml: benchmarks: 'tc': {d}/test.tsv:3: label 'neutral' does not occur in the training "
          "data ({d}/train.tsv); known labels: neg, pos"],
         files={"train.tsv": "text\tlabel\ngood movie\tpos\nbad movie\tneg\n",
                "test.tsv": "text\tlabel\ngreat film\tpos\nfine movie\tneutral\n"},
         needs=("benchmark", "text_classification"), commands=("run",)),
    Case("tsv_written_by_the_csv_module",
         config("{name: text_classification, label: tc, params: {train: train.tsv, test: test.tsv}}",
                models="[{path: ./classifier}]"),
         ["error: {d}/exp.yaml: benchmarks: 'tc': {d}/test.tsv:3: column 'text' holds '\"a \"\"great\"\" film\"', a field "
          "quoted the way Python's csv module writes it (wrapped in \" with inner quotes doubled); with quoting: none "
          "the model would see those quote characters. Set quoting: csv to read the quoting, or write the file "
          "without it (csv.writer(..., quoting=csv.QUOTE_NONE, escapechar=...))"],
         files={"train.tsv": "text\tlabel\ngood movie\tpos\nbad movie\tneg\n",
                "test.tsv": 'text\tlabel\nfine movie\tpos\n"a ""great"" film"\tpos\n'},
         needs=("benchmark", "text_classification"), commands=("run",)),
    # --- text that is not what it looks like (issue 21): wide encodings, control characters in labels
    Case("utf16le_without_bom", config(),
         ["error: {d}/exp.yaml: benchmarks: 'toy': {d}/src.txt: read as utf-8, 62 of its 124 characters are NUL bytes: "
          "it looks like UTF-16-LE text without a byte-order mark; name it with the benchmark's `encoding: utf-16-le` "
          "parameter, or convert the file: iconv -f utf-16-le -t utf-8 src.txt > src.utf8.txt"],
         files={"src.txt": SRC.encode("utf-16-le")}, commands=("run",)),
    Case("utf16be_without_bom", config(),
         ["error: {d}/exp.yaml: benchmarks: 'toy': {d}/src.txt: read as utf-8, 62 of its 124 characters are NUL bytes: "
          "it looks like UTF-16-BE text without a byte-order mark; ..."],
         files={"src.txt": SRC.encode("utf-16-be")}, commands=("run",)),
    Case("utf32le_without_bom", config(),
         ["error: {d}/exp.yaml: benchmarks: 'toy': {d}/src.txt: read as utf-8, 186 of its 248 characters are NUL bytes: "
          "it looks like UTF-32-LE text without a byte-order mark; ..."],
         files={"src.txt": SRC.encode("utf-32-le")}, commands=("run",)),
    Case("utf16_read_as_cp1252_is_not_evaluated",
         config("{name: parallel_text, label: toy, params: {source: src.txt, reference: ref.txt, encoding: cp1252}}"),
         ["error: {d}/exp.yaml: benchmarks: 'toy': {d}/src.txt: read as cp1252, 62 of its 126 characters are NUL bytes: "
          "it looks like UTF-16-LE text without a byte-order mark; ..."],
         files={"src.txt": SRC.encode("utf-16")}, commands=("run",)),
    Case("ansi_escape_in_a_data_label",
         config("{name: text_classification, label: tc, params: {train: train.tsv, test: test.tsv}}",
                models="[{path: ./classifier}]"),
         ["error: {d}/exp.yaml: benchmarks: 'tc': {d}/test.tsv:3: label '\\x1b[31mneutral\\x1b[0m' does not occur in the "
          "training data ({d}/train.tsv); known labels: neg, pos"],
         files={"train.tsv": "text\tlabel\ngood movie\tpos\nbad movie\tneg\n",
                "test.tsv": "text\tlabel\ngreat film\tpos\nfine movie\t\x1b[31mneutral\x1b[0m\n"},
         needs=("benchmark", "text_classification"), commands=("run",)),
    # --- YAML that is too big for what it says (issue 21): limits counted before anything is built
    Case("yaml_aliases_expand_past_the_files_size",
         config() + "x: &a '" + "y" * 3000 + "'\nl: &b [" + ", ".join(["*a"] * 9) + "]\ndescription: ["
         + ", ".join(["*b"] * 5000) + "]\n",
         ["error: {d}/exp.yaml:7: description[36]: anchors/aliases expand the document to more than 1,023,203 characters "
          "(the file has 23,203); allowed: at most the file's size plus 1,000,000"]),
    Case("yaml_list_of_200k_values_without_aliases", config() + "seeds:\n" + "  - 0\n" * 200_000,
         ["error: {d}/exp.yaml:99983: seeds[99977]: the document has more than 100,000 values (this list or mapping is "
          "too long for an experiment); allowed: at most 100,000"]),
    Case("yaml_file_of_11_MB", config() + "description: '" + "x" * 11_000_000 + "'\n",
         ["error: {d}/exp.yaml: 11,000,..."]),
    Case("yaml_null_key", config() + "decoders:\n  - name: greedy\n    null: 3\n",
         ["error: {d}/exp.yaml:7: key 'null' is read by YAML as null, not as a name; quote it ('null': ...) or remove "
          "it"]),
    Case("yaml_tilde_key", config() + "\n\n~: 3\n",
         ["error: {d}/exp.yaml:7: key '~' is read by YAML as null, not as a name; quote it ('~': ...) or remove it"]),
    Case("yaml_on_key", config() + "on: 3\n",
         ["error: {d}/exp.yaml:5: key 'on' is read by YAML as true, not as a name; quote it ('on': ...) or remove it"]),
    Case("model_config_garbage", config(models="[{path: ./broken}]"),
         ["error: {d}/exp.yaml:2: models[0]: model 'broken': {d}/broken/config.json:1: not valid JSON (Expecting "
          "property name enclosed in double quotes at column 2)"],
         files={"broken/config.json": "{not json"}),
    Case("model_needs_remote_code", config(models="[{path: ./remote}]"),
         ["error: {d}/exp.yaml: models: 'remote': model '{d}/remote' has a config transformers cannot use: "
          "The repository {d}/remote contains custom code which must be executed to correctly load the model. You "
          "can inspect the repository content at ..."],
         files={"remote/config.json": '{"model_type": "evil_remote", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}',
                "remote/configuration_evil.py": "open(__file__ + '.ran', 'w').write('code ran')\n",
                "remote/model.safetensors": b"\x02\0\0\0\0\0\0\0{}",  # a valid, empty safetensors file
                "remote/tokenizer_config.json": "{}"},
         commands=("run",)),
]


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>", p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def workdir(tmp_path, tiny_marian, tiny_bert, tiny_gpt2):
    (tmp_path / "model").symlink_to(tiny_marian)
    (tmp_path / "classifier").symlink_to(tiny_bert)
    (tmp_path / "lm").symlink_to(tiny_gpt2)
    (tmp_path / "src.txt").write_text(SRC)
    (tmp_path / "ref.txt").write_text(REF)
    # an existing run directory that a failed command must leave exactly as it was
    out = tmp_path / "out"
    (out / "cells" / "0123456789abcdef").mkdir(parents=True)
    (out / "cells" / "0123456789abcdef" / "cell.json").write_text('{"status": "done"}\n')
    (out / "metrics.csv").write_text("model,benchmark,strategy,decoder,seed,metric,value\n")
    (out / "manifest.json").write_text('{"experiment": "earlier"}\n')
    return tmp_path


def _has_gpu() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or (mps is not None and mps.is_available())


def prepare(case: Case, d: Path) -> Path:
    if case.needs and case.needs[1] not in default_plugins().registry(case.needs[0]):
        pytest.skip(f"{case.needs[0]} plugin '{case.needs[1]}' is not registered (written by another engineer)")
    if case.gpu_free and _has_gpu():
        pytest.skip("this machine has a GPU, so the device is available")
    if case.shared:
        (d / "shared").symlink_to(shared_data(*case.shared))
    for name, target in case.links.items():
        (d / name).symlink_to(target)
    for name in case.fifos:
        os.mkfifo(d / name)
    for name, content in case.files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    cfg = d / "exp.yaml"
    text = case.yaml.replace("{d}", str(d)) if isinstance(case.yaml, str) else case.yaml
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    return cfg


def assert_error_lines(stderr: str, expect: list[str], d: Path) -> None:
    lines = stderr.rstrip("\n").split("\n")
    assert len(lines) == len(expect), stderr
    for line, want in zip(lines, expect):
        want = want.replace("{d}", str(d))
        if want.endswith("..."):
            assert line.startswith(want[:-3]), f"\n got: {line}\nwant: {want}"
        else:
            assert line == want


@pytest.mark.parametrize(("case", "command"), [pytest.param(c, cmd, id=f"{c.id}-{cmd}") for c in CASES for cmd in c.commands])
def test_bad_input_gives_one_clear_error_and_touches_nothing(case, command, workdir):
    cfg = prepare(case, workdir)
    before = snapshot(workdir / "out")
    args = [command, str(cfg)] + (["-o", str(workdir / "out"), "--cache-dir", str(workdir / "cache")] if command == "run" else [])
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)  # not an escaped exception
    assert res.stdout == ""
    assert_error_lines(res.stderr, case.expect, workdir)
    assert snapshot(workdir / "out") == before
    assert not (workdir / "cache").exists()
    assert not (workdir / "pwned").exists() and not list(workdir.rglob("*.ran"))


@pytest.mark.parametrize("case_id", ["misaligned_files", "yaml_nested_3000_deep", "model_config_json_nested_5000_deep",
                                     "data_path_is_dev_zero"])
def test_no_traceback_reaches_a_real_terminal(workdir, case_id):
    """The same through a real process (Python's real recursion limit, a real /dev/zero): stderr is
    the error lines, nothing else, and nothing hangs."""
    case = next(c for c in CASES if c.id == case_id)
    cfg = prepare(case, workdir)
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(cfg), "-o", str(workdir / "out")],
                         capture_output=True, text=True, cwd=workdir, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert_error_lines(res.stderr, case.expect, workdir)


def test_output_path_that_is_a_file_is_refused(workdir):
    (workdir / "taken").write_text("precious")
    res = CliRunner().invoke(main, ["run", str(prepare(Case("ok", config(), []), workdir)),
                                    "-o", str(workdir / "taken")])
    assert res.exit_code == 2
    assert res.stderr == (f"error: {workdir / 'taken'}: is a file, not a directory; the output directory (-o) must "
                          "be a directory (new, empty, or one a harness run wrote)\n")
    assert (workdir / "taken").read_text() == "precious"


# ----------------------------------------------------------------------------- security


def test_pickle_payload_in_bin_weights_is_refused_not_executed(workdir, tiny_marian):
    """transformers v5 loads .bin with torch.load(weights_only=True): the payload's os.system is refused."""
    import torch

    evil = workdir / "evil"
    evil.mkdir()
    for f in tiny_marian.iterdir():
        if f.suffix != ".safetensors":
            (evil / f.name).write_bytes(f.read_bytes())
    marker = workdir / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model.shared.weight": Payload()}, evil / "pytorch_model.bin")
    cfg = prepare(Case("evil", config(models="[{path: ./evil}]"), []), workdir)
    for command in ("validate", "run"):  # found once, before any cell, by reading the pickle without running it
        res = CliRunner().invoke(main, [command, str(cfg)] + (["-o", str(workdir / "run")] if command == "run" else []))
        assert not marker.exists()
        assert res.exit_code == 2
        assert res.stderr == (f"error: {cfg}:2: models[0]: model 'evil': {evil}/pytorch_model.bin: its weights hold "
                              "pickled objects that are not plain tensors (posix.system), refused for safety (convert "
                              "it to safetensors from a trusted source)\n")
    assert not (workdir / "run").exists()


def test_remote_code_error_is_one_line_saying_what_to_set(workdir):
    case = next(c for c in CASES if c.id == "model_needs_remote_code")
    cfg = prepare(case, workdir)
    res = CliRunner().invoke(main, ["run", str(cfg), "-o", str(workdir / "out")])
    assert res.exit_code == 2
    assert len(res.stderr.splitlines()) == 1
    assert res.stderr.endswith("Please pass the argument `trust_remote_code=True` to allow custom code to be run. In the "
                               "experiment: set trust_remote_code: true on this model entry, only if you trust its "
                               "code.\n")
    assert not list(workdir.rglob("*.ran"))


def test_plain_tensor_pickles_are_not_refused(tmp_path, tiny_marian):
    """A .bin holding only tensors (what torch.save of a state dict writes) passes the static check."""
    import torch

    from harness.models.facts import pickled_weights_problem, unsafe_pickle_globals

    from safetensors.torch import load_file

    (tmp_path / "config.json").write_text((tiny_marian / "config.json").read_text())
    torch.save(load_file(tiny_marian / "model.safetensors"), tmp_path / "pytorch_model.bin")
    assert unsafe_pickle_globals(tmp_path / "pytorch_model.bin") == []
    assert pickled_weights_problem(tmp_path) is None


def test_labels_cannot_escape_the_output_directory(workdir):
    yaml = config(models="[{path: ./model, label: ../../../../escaped-model}]",
                  extra="decoders: [{name: greedy, label: /tmp/escaped-decoder, params: {max_new_tokens: 2}}]\n"
                        "reporters: []\n")
    yaml = yaml.replace("label: toy", "label: ../..")
    cfg = prepare(Case("escape", yaml, []), workdir)
    outside_before = {p for p in workdir.parent.rglob("*escaped*")}
    res = CliRunner().invoke(main, ["run", str(cfg), "-o", str(workdir / "run"), "--cache-dir", str(workdir / "cache")])
    assert res.exit_code == 0, res.output
    assert {p for p in workdir.parent.rglob("*escaped*")} == outside_before | set((workdir / "run").rglob("*escaped*"))
    assert not Path("/tmp/escaped-decoder").exists()
    assert [p.name for p in (workdir / "run" / "predictions").iterdir()] == [
        "escaped-model__.._..__none___tmp_escaped-decoder__0.jsonl"]


# ----------------------------------------------------------------------------- issue 21: text, YAML, CLI


def _run_ok(workdir: Path, yaml: str, *extra: str) -> Path:
    cfg = prepare(Case("ok", yaml, []), workdir)
    res = CliRunner().invoke(main, ["run", str(cfg), "-o", str(workdir / "run"), "--cache-dir", str(workdir / "cache"),
                                    "-q", *extra])
    assert res.exit_code in (0, 1), res.output
    return workdir / "run"


def test_utf16_with_a_byte_order_mark_is_decoded_not_evaluated_as_nul_laced_text(workdir):
    (workdir / "src.txt").write_bytes(SRC.encode("utf-16"))  # BOM + UTF-16-LE
    (workdir / "ref.txt").write_bytes(REF.encode("utf-32"))
    out = _run_ok(workdir, config(extra="decoders: [{name: greedy, params: {max_new_tokens: 2}}]\n"))
    [pred] = (out / "predictions").iterdir()
    rows = [json.loads(line) for line in pred.read_text().splitlines()]
    assert [r["source"] for r in rows] == SRC.splitlines() and [r["reference"] for r in rows] == REF.splitlines()


def test_control_characters_in_a_segment_never_reach_report_html_raw(workdir):
    (workdir / "src.txt").write_text("the cat\0sat\nthe \x1b[2Jdog ran\na big\x7f red cat\n")
    out = _run_ok(workdir, config(extra="decoders: [{name: greedy, params: {max_new_tokens: 2}}]\n"))
    html = (out / "report.html").read_bytes()
    assert not any(b in html for b in (b"\x00", b"\x1b", b"\x7f")), "raw control characters in report.html"
    assert "the cat␀sat" in html.decode()


def test_labels_spelled_in_nfd_and_nfc_are_one_label(workdir):
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    (workdir / "train.tsv").write_text(f"text\tlabel\ngood movie\t{nfc}\nbad movie\tneg\ngreat film\t{nfc}\n")
    (workdir / "test.tsv").write_text(f"text\tlabel\nfine movie\t{nfd}\nawful film\tneg\n")
    out = _run_ok(workdir, config("{name: text_classification, label: tc, params: {train: train.tsv, test: test.tsv}}",
                                  models="[{path: ./classifier}]",
                                  extra="strategies: [{name: unmasked, params: {epochs: 1, batch_size: 2}}]\n"))
    [pred] = (out / "predictions").iterdir()
    assert {json.loads(line)["reference"] for line in pred.read_text().splitlines()} == {nfc, "neg"}


def test_a_pathological_segment_does_not_stall_ter(workdir):
    """A 1,200,000-word (7 MB) reference segment (a file that lost its line breaks): TER's shift search would
    take minutes to hours on it. The run finishes (a real process, so a hang fails the test at
    its timeout rather than the suite), ter fails alone naming the example, the other metrics and
    the per-example scores of the other rows are kept."""
    words = " ".join(["katze", "hund", "haus", "rot", "gross"] * 240_000)
    (workdir / "ref.txt").write_text(f"die katze sass auf der matte\n{words}\neine grosse rote katze\n")
    cfg = prepare(Case("ter", config(extra="decoders: [{name: greedy, params: {max_new_tokens: 3}}]\n"
                                           "metrics: [chrf, ter]\n"), []), workdir)
    res = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(cfg), "-o", str(workdir / "run"),
                          "--cache-dir", str(workdir / "cache"), "-q"], capture_output=True, text=True, cwd=workdir,
                         timeout=300)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    failed = [line for line in res.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "metric 'ter' failed: ter: example 'test-2' has " in failed[0] \
        and " output words and 1,200,000 reference words" in failed[0], res.stderr
    [pred] = (workdir / "run" / "predictions").iterdir()
    scores = [json.loads(line)["scores"] for line in pred.read_text().splitlines()]
    assert [s["ter"] is None for s in scores] == [False, True, False] and all(s["chrf"] is not None for s in scores)


def test_example_scores_report_their_progress():
    from harness.api import Example
    from harness.plugins import default_plugins
    from harness.run.example_scores import metric_example_scores

    cls = default_plugins().get("metric", "ter")
    seen = []
    metric_example_scores(cls(cls.Params()), ["a b", "c"], [Example(id="1", source="x", reference="a b"),
                                                             Example(id="2", source="y", reference="c")],
                          progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]


CLI_EDITS = [  # (case, config text, arguments after CONFIG, the error line)
    ("name_on_a_list_config", "- a\n- b\n", ["--name", "x"],
     "error: {cfg}: an experiment must be a YAML mapping (name:, models:, benchmarks:, ...), got a list"),
    ("name_on_an_empty_config", "", ["--name", "x"],
     "error: {cfg}: an experiment must be a YAML mapping (name:, models:, benchmarks:, ...), got an empty file"),
    ("set_on_a_list_config", "- a\n", ["--set", "name=x"],
     "error: {cfg}: an experiment must be a YAML mapping (name:, models:, benchmarks:, ...), got a list"),
    ("set_key_path_of_3000_parts", None, ["--set", ".".join(["a"] * 3000) + "=1"],
     "error: --set a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.... (6,001 characters): the key path "
     "has 3,000 parts; allowed: at most 100 (an experiment is a few levels deep)"),
    ("set_value_nested_900_levels", None, ["--set", "description=" + "[" * 900 + "]" * 900],
     "error: --set description=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[... (1,812 characters):1: [0]: "
     "mappings/lists nested more than 100 levels deep; allowed: at most 100"),
    ("set_path_and_value_deep_together", None, ["--set", ".".join(["d"] * 60) + "=" + "[" * 60 + "]" * 60],
     "error: --set d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.... (240 characters): the edited config "
     "nests more than 100 levels deep; allowed: at most 100"),
    ("unknown_option", None, ["--frobnicate"], "error: harness validate has no option --frobnicate (see harness validate --help)"),
]


@pytest.mark.parametrize("case", CLI_EDITS, ids=lambda c: c[0])
def test_command_line_edits_of_any_size_are_one_error_line(workdir, case):
    _, text, args, want = case
    cfg = workdir / "exp.yaml"
    cfg.write_text(config() if text is None else text)
    before = tree_state(workdir)
    res = subprocess.run([sys.executable, "-m", "harness.cli", "validate", str(cfg), *args], capture_output=True,
                         text=True, cwd=workdir, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr == want.replace("{cfg}", str(cfg)) + "\n"
    assert tree_state(workdir) == before


def test_output_option_naming_a_file_is_one_error_line_for_every_command(workdir):
    (workdir / "taken").write_text("precious")
    cfg = prepare(Case("ok", config(), []), workdir)
    before = tree_state(workdir)
    for args in (["run", str(cfg), "-o", str(workdir / "taken")],
                 ["run", "--model", str(workdir / "model"), "--benchmark",
                  f"parallel_text:source={workdir / 'src.txt'},reference={workdir / 'ref.txt'}", "-o",
                  str(workdir / "taken")],
                 ["report", str(workdir / "taken")]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        [line] = res.stderr.splitlines()
        assert line.startswith("error: ") and str(workdir / "taken") in line, line
    assert tree_state(workdir) == before
