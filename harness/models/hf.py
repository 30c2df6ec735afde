"""Loading Hugging Face models for evaluation: config, tokenizer, weights, and the decoders' view.

:func:`load_transformers_model` turns a :class:`~harness.models.spec.ModelSpec` into a
:class:`GenerationModel`, the object decoders receive (public name:
``harness.decoding.GenerationModel``); strategies and the classifier load through
:func:`load_hf_model`, :func:`load_config` and :func:`load_tokenizer`. torch and transformers
are imported only inside the loading functions. Non-goals: choosing the engine
(:mod:`harness.engines`), other model formats.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError

if TYPE_CHECKING:  # pragma: no cover
    from .spec import ModelSpec


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype == "int8":  # loaded in float32, then quantized (quantize_int8)
        return torch.float32
    return getattr(torch, dtype)


def quantize_int8(model, spec: ModelSpec):
    """``dtype: int8``: every Linear layer (GPT-2's Conv1D blocks too) as int8, weights per output
    row, activations per row (:mod:`harness.models.int8`). Embeddings, layer norms and attention
    stay float32. CPU only."""
    from . import int8

    if not int8.available():
        raise ModelLoadError(f"model '{spec.path}': dtype int8 needs torch's fbgemm int8 ops, which this torch build "
                             "lacks; use dtype float32")
    return int8.quantize_linear_layers(model)


def onednn_linear(model, spec: ModelSpec):
    """``kernels: onednn``: every float32 nn.Linear with its weight prepacked for oneDNN
    (:mod:`harness.models.kernels`). Inference only; float32 on the CPU."""
    from . import kernels

    if not kernels.available():
        raise ModelLoadError(f"model '{spec.path}': kernels onednn needs a torch build with oneDNN (mkldnn) and its "
                             "prepacked linear ops, and this one has none; remove kernels: onednn")
    return kernels.pack_linear_layers(model)


def choose_kernels(model, spec: ModelSpec, device: str, reload):
    """The model with the kernels its spec asks for, and the :class:`~harness.models.kernels.KernelChoice`
    (``kernels: auto`` probes oneDNN against the default kernels; ``reload()`` gives the model
    again if the probe refuses). Inference only: decoding and classifier predictions."""
    from .kernels import KernelChoice, apply_kernels

    if spec.dtype == "int8":
        from . import int8

        model = quantize_int8(model, spec)
        return model, KernelChoice(spec.kernels, "int8", f"dtype int8: int8 Linear layers, weights and activations "
                                                         f"per row ({model.harness_int8_bits}-bit activations; "
                                                         f"{model.harness_int8_wide} output layer(s) of "
                                                         f"{int8.WIDE}+ outputs through oneDNN)")
    if spec.kernels == "onednn":
        return onednn_linear(model, spec), KernelChoice("onednn", "onednn", "asked for")
    return apply_kernels(model, spec.kernels, str(device), reload=reload)


def choose_step(gm: GenerationModel, spec: ModelSpec) -> tuple[bool, str, float | None]:
    """Whether decoding steps run the harness's own Marian step (:mod:`harness.models.seq2seq_step`)
    instead of transformers' forward: ``kernels: auto`` (the default; int8 too) on the CPU, a Marian
    model, and a probe of the step against the model's full forward (still float32 with the default
    kernels, before choose_kernels) within the kernels' tolerance. Returns (use it, why, probe gap)."""
    from .kernels import PROBE_TOLERANCE
    from .seq2seq_step import MarianStep, add_fused_projections, marian_problem, remove_fused_projections, step_gap

    if spec.kernels != "auto":
        return False, f"kernels {spec.kernels}: transformers' forward", None
    if str(gm.device) != "cpu":
        return False, f"device {gm.device}: transformers' forward", None
    problem = marian_problem(gm.model)
    if problem is not None:
        return False, problem, None
    from .probe import probe_inputs

    add_fused_projections(gm.model)  # before packing or quantizing: they become packed/int8 layers too
    gap = step_gap(gm.model, MarianStep(gm), probe_inputs(gm.model.config))
    if gap <= PROBE_TOLERANCE:
        return True, f"Marian: the harness's step within {PROBE_TOLERANCE:g} of the full forward", gap
    remove_fused_projections(gm.model)
    return False, f"the harness's step differs by {gap:.3g} > {PROBE_TOLERANCE:g} from the full forward", gap


def _pretrained_kwargs(spec: ModelSpec) -> dict[str, Any]:
    kw: dict[str, Any] = {"trust_remote_code": spec.trust_remote_code}
    if spec.revision:
        kw["revision"] = spec.revision
    if spec.trust_remote_code:
        warnings.warn(f"trust_remote_code is on for model {spec.path}: code shipped with it will run",
                      stacklevel=2)
    return kw


def load_config(spec: ModelSpec):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(spec.path, **_pretrained_kwargs(spec))
    except OSError as e:
        where = "local directory" if spec.local else "Hub id (is the network reachable?)"
        raise ModelLoadError(f"model '{spec.path}' ({where}) could not be loaded: {_one_line(e)}") from None
    except ValueError as e:
        hint = " In the experiment: set trust_remote_code: true on this model entry, only if you trust its code." \
            if "trust_remote_code" in str(e) else ""
        raise ModelLoadError(f"model '{spec.path}' has a config transformers cannot use: {_one_line(e)}{hint}") from None


def _one_line(e: BaseException) -> str:
    """transformers' messages span several lines; one problem is one `error:` line."""
    return " ".join(str(e).split())


def load_tokenizer(spec: ModelSpec, *, padding_side: str | None = None):
    from transformers import AutoTokenizer

    kw = _pretrained_kwargs(spec)
    if padding_side:
        kw["padding_side"] = padding_side
    try:
        tok = AutoTokenizer.from_pretrained(spec.tokenizer or spec.path, **kw)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"tokenizer of '{spec.tokenizer or spec.path}' could not be loaded: {e}") from None
    if spec.src_lang is not None and hasattr(tok, "src_lang"):
        tok.src_lang = spec.src_lang
    if spec.tgt_lang is not None and hasattr(tok, "tgt_lang"):
        tok.tgt_lang = spec.tgt_lang
    return tok


def _dtype_kwarg() -> str:
    """from_pretrained's dtype keyword: ``dtype`` since transformers 4.56, ``torch_dtype`` before
    (4.55 passes an unknown ``dtype`` on to the model's __init__, which fails)."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__).release >= (4, 56) else "torch_dtype"


def load_hf_model(spec: ModelSpec, auto_cls_name: str, *, seed: int = 0, device: str | None = None,
                  new_head: bool = False, **extra):
    """Load (or, with init=random, build) a transformers model of the given Auto class.

    A checkpoint must fill the model: weights of the architecture that the checkpoint lacks
    (they would start random), weights it holds that the architecture has no place for, and
    weights of the wrong shape are a :class:`ModelLoadError` naming the model, its architecture
    and the first keys (:func:`check_loading_report`). ``new_head=True`` is how the callers that
    build a task head say so: the head (everything outside the base model, and its pooler) may be
    missing, and the checkpoint's own head may be left over. ``allow_missing_weights: true`` on a
    model entry is the user's opt-in for anything else. The model's ``harness_new_weights`` lists
    the weights that started random (the new head)."""
    import torch
    import transformers

    auto_cls = getattr(transformers, auto_cls_name)
    dev = resolve_device(device or spec.device)
    dtype = resolve_dtype(spec.dtype, dev)
    report = None
    try:
        if spec.init == "random":
            config = load_config(spec)
            for k, v in extra.items():
                setattr(config, k, v)
            torch.manual_seed(seed)
            model = auto_cls.from_config(config, trust_remote_code=spec.trust_remote_code)
            model = model.to(dtype)
        else:
            model, report = auto_cls.from_pretrained(spec.path, **{_dtype_kwarg(): dtype}, **_pretrained_kwargs(spec),
                                                     output_loading_info=True, **extra)
    except OSError as e:
        raise ModelLoadError(f"model '{spec.path}' could not be loaded: {_one_line(e)}") from None
    except ValueError as e:
        raise ModelLoadError(f"model '{spec.path}' cannot be loaded as {auto_cls_name}: {_one_line(e)}") from None
    except Exception as e:  # torch's weights_only unpickler refuses pickled code in .bin files
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise ModelLoadError(f"model '{spec.path}': its weights hold pickled objects that are not plain tensors, "
                                 "refused for safety (convert it to safetensors from a trusted source)") from None
        if ("size mismatch" in str(e) or "mismatched" in str(e).lower()) and not extra.get("ignore_mismatched_sizes"):
            # transformers' message points at a report it logged; load again to name the weights
            return load_hf_model(spec, auto_cls_name, seed=seed, device=device, new_head=new_head,
                                 ignore_mismatched_sizes=True, **extra)
        raise
    model.harness_new_weights = []
    if report is not None:
        model.harness_new_weights = check_loading_report(spec, model, report, new_head=new_head)
    # dtype int8 is loaded in float32 here: choose_kernels quantizes it for inference
    return model.to(dev).eval()


SHOWN_KEYS = 3  # keys named in an error; the count says how many more


def _in_head(model, key: str) -> bool:
    """Whether ``key`` belongs to a task head (outside the base model) or the base model's pooler."""
    prefix = getattr(model, "base_model_prefix", "")
    inside = bool(prefix) and hasattr(model, prefix) and key.startswith(prefix + ".")
    return not inside or ".pooler." in key or key.startswith("pooler.")


def check_loading_report(spec: ModelSpec, model, report: dict, *, new_head: bool) -> list[str]:
    """Refuse a checkpoint that does not fill its architecture (see :func:`load_hf_model`);
    returns the missing keys that were allowed (a new head)."""
    missing = sorted(map(str, report.get("missing_keys") or []))
    unexpected = sorted(map(str, report.get("unexpected_keys") or []))
    mismatched = sorted(report.get("mismatched_keys") or [], key=str)
    allowed_missing = [k for k in missing if new_head and _in_head(model, k)]
    bad_missing = [k for k in missing if k not in allowed_missing]
    bad_unexpected = [k for k in unexpected if not (new_head and _in_head(model, k))]
    bad_mismatched = [m for m in mismatched if not (new_head and _in_head(model, str(m[0] if isinstance(m, tuple) else m)))]
    if getattr(spec, "allow_missing_weights", False) or not (bad_missing or bad_unexpected or bad_mismatched):
        return allowed_missing + (bad_missing if getattr(spec, "allow_missing_weights", False) else [])
    arch = type(model).__name__
    mtype = getattr(model.config, "model_type", "?")
    parts = []
    if bad_missing:
        parts.append(f"{len(bad_missing)} of its weights are missing from the checkpoint ({_keys(bad_missing)})")
    if bad_unexpected:
        parts.append(f"{len(bad_unexpected)} weights in the checkpoint have no place in it ({_keys(bad_unexpected)})")
    if bad_mismatched:
        shown = ", ".join(f"{m[0]} is {tuple(m[1])} in the checkpoint, {tuple(m[2])} in the model"
                          if isinstance(m, tuple) and len(m) == 3 else str(m) for m in bad_mismatched[:SHOWN_KEYS])
        more = f", and {len(bad_mismatched) - SHOWN_KEYS} more" if len(bad_mismatched) > SHOWN_KEYS else ""
        parts.append(f"{len(bad_mismatched)} weights have another shape than its config.json gives ({shown}{more})")
    hint = ("its config.json (model_type '" + mtype + "') does not describe these weights"
            if (bad_missing and bad_unexpected) or bad_mismatched else "the checkpoint is incomplete or from another model")
    raise ModelLoadError(f"model '{spec.path}' ({arch}, model_type '{mtype}'): {'; '.join(parts)}: {hint}. Evaluating "
                         "it would use random weights; fix the checkpoint, or set allow_missing_weights: true on this "
                         "model entry if they are meant to start random")


def _keys(keys: list[str]) -> str:
    more = f", and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    return "e.g. " + ", ".join(keys[:SHOWN_KEYS]) + more if len(keys) > SHOWN_KEYS else ", ".join(keys) + more


def generation_setting(model, name: str):
    """A generation setting as generate() reads it: the model's generation_config, else its config."""
    gen = getattr(model, "generation_config", None)
    value = getattr(gen, name, None) if gen is not None else None
    return value if value is not None else getattr(model.config, name, None)


def decoder_start_token_id(model) -> int | None:
    """The token the decoder of an encoder-decoder ``model`` starts from (its BOS when no start
    token is set); None for decoder-only models without one."""
    start = generation_setting(model, "decoder_start_token_id")
    if start is None and getattr(model.config, "is_encoder_decoder", False):
        start = generation_setting(model, "bos_token_id")
    return start


class GenerationModel:
    """A seq2seq or decoder-only LM ready for decoding, with its tokenizer and special ids.

    Decoders receive this as ``Decoder.decode(model, sources, ctx)``'s ``model`` (public name:
    ``harness.decoding.GenerationModel``).

    - ``encode(sources)``: token-id lists, the prompt template applied for decoder-only models,
      truncated to ``max_source_length``.
    - ``decode_text(ids)``: generated ids back to text (special tokens dropped, stripped).
    - Stepping: this object has no ``step``; ``harness.decoding.HFStepModel(model)`` gives the
      step interface (``start(prompts)`` -> session with ``step(tokens)`` -> logits and
      ``select(rows)``), and ``harness.decoding.run_search`` builds it for you.
    - ``generation_config``: the model's transformers ``GenerationConfig`` (or None);
      ``harness.decoding.rules_from_model`` turns it into the rules generate() applies.
    - Attributes: ``spec`` (the :class:`ModelSpec`), ``model`` (the transformers model),
      ``tokenizer``, ``device``, ``is_encoder_decoder``, ``eos_token_ids`` (list),
      ``pad_token_id``, ``decoder_start_token_id`` (encoder-decoder models),
      ``forced_bos_token_id`` (the target language for mBART/NLLB with ``tgt_lang``),
      ``max_source_length``; ``kernels`` (a :class:`~harness.models.kernels.KernelChoice`: which
      Linear kernels run, and why; None for another engine).

    A model run by another engine (``engine: ctranslate2``) carries a ``search_engine`` that runs
    the built-in searches; its ``model`` then holds only the config, not a torch module.
    """

    def __init__(self, spec: ModelSpec, model, tokenizer, device: str):
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))

        def pick(name):
            return generation_setting(model, name)

        eos = pick("eos_token_id")
        self.eos_token_ids: list[int] = [eos] if isinstance(eos, int) else list(eos or [])
        self.pad_token_id = pick("pad_token_id")
        if self.pad_token_id is None:
            self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (
                self.eos_token_ids[0] if self.eos_token_ids else 0)
        self.decoder_start_token_id = decoder_start_token_id(model)
        self.forced_bos_token_id = pick("forced_bos_token_id")
        if spec.tgt_lang is not None:
            tid = tokenizer.convert_tokens_to_ids(spec.tgt_lang)
            if tid is None or tid == tokenizer.unk_token_id:
                raise ModelLoadError(f"model '{spec.path}': unknown target language code '{spec.tgt_lang}'")
            self.forced_bos_token_id = tid
        self.generation_config = getattr(model, "generation_config", None)
        self.kernels = None  # set by the loader that chose them
        self.step_model = None  # a StepModel of the harness's own (harness.models.seq2seq_step), else None
        # The default max_source_length (512) is cut to what the model's position table holds, so a
        # small model truncates long inputs instead of failing with IndexError; a value the user
        # set beyond it was refused by the pre-run check (harness.experiment.checks).
        self.max_source_length = spec.max_source_length
        if "max_source_length" not in spec.model_fields_set:
            from .facts import model_facts

            limit = model_facts(model.config.to_dict(), spec).encoder_positions
            if limit is not None:
                self.max_source_length = min(self.max_source_length, limit)

    def encode(self, sources) -> list[list[int]]:
        """Token ids per source (special tokens added as the tokenizer does; prompt template
        applied; truncated to ``max_source_length``)."""
        texts = list(sources)
        if self.spec.prompt_template is not None:
            texts = [self.spec.prompt_template.replace("{source}", s) for s in texts]
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_source_length,
                             add_special_tokens=True)
        return [list(ids) for ids in enc["input_ids"]]

    def decode_text(self, ids) -> str:
        """The text of generated token ids: special tokens skipped, surrounding space stripped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()


def load_transformers_model(spec: ModelSpec, *, seed: int = 0) -> GenerationModel:
    """``spec`` loaded for engine ``transformers``: the harness's own searches will run it
    (:func:`harness.engines.load.load_generation_model` picks the engine a spec names)."""
    config = load_config(spec)
    kind = spec.kind
    if kind == "auto":
        kind = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
    if kind not in ("seq2seq", "causal"):
        archs = ", ".join(getattr(config, "architectures", None) or []) or "none listed"
        raise ModelLoadError(f"model '{spec.path}' (architectures: {archs}; model_type "
                             f"{getattr(config, 'model_type', '?')}) is kind: {kind}; translation needs a seq2seq or "
                             "causal model (set kind: causal if it is a decoder-only LM)")
    device = resolve_device(spec.device)
    tokenizer = load_tokenizer(spec, padding_side="left" if kind == "causal" else None)
    auto = "AutoModelForSeq2SeqLM" if kind == "seq2seq" else "AutoModelForCausalLM"
    model = load_hf_model(spec, auto, seed=seed, device=device)
    gm = GenerationModel(spec, model, tokenizer, device)
    own_step, step_reason, step_gap = choose_step(gm, spec) if gm.is_encoder_decoder else (
        False, "decoder-only: transformers' forward", None)
    gm.model, choice = choose_kernels(model, spec, device, lambda: load_hf_model(spec, auto, seed=seed, device=device))
    if own_step:
        from .seq2seq_step import MarianStep

        gm.step_model = MarianStep(gm)
    gm.kernels = dataclasses.replace(choice, step="harness" if own_step else "transformers", step_reason=step_reason,
                                     step_gap=step_gap)
    if str(device) == "cpu":
        from .kernels import keep_freed_memory

        keep_freed_memory()
    return gm


# ----------------------------------------------------------------------------- before any cell


def _checkpoint_tensors(directory) -> dict[str, tuple] | None:
    """Names and shapes of a local checkpoint's tensors, from safetensors headers (no tensor read);
    None when the weights are not (only) safetensors."""
    from pathlib import Path

    from .weights import safetensors_header

    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        return None
    out: dict[str, tuple] = {}
    for f in files:
        try:
            header, _ = safetensors_header(f)
        except (OSError, ValueError):
            return None  # reported by validate's file checks
        out.update({k: tuple(v.get("shape") or ()) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)})
    return out


def checkpoint_fits(spec: ModelSpec, auto_cls_name: str, *, new_head: bool = False) -> None:
    """Refuse, before any cell, a local checkpoint that does not fill the architecture its config
    names (:func:`check_loading_report`), without loading it when nothing looks wrong.

    The architecture is built on torch's meta device (no memory) and its weight names and shapes
    are compared with the safetensors headers, the base-model prefix added or dropped as
    transformers does and tied weights counted once. Only when they disagree is the checkpoint
    loaded for real, so that transformers' own report (which knows the renamings of older
    checkpoints) decides; a disagreement it explains is no error."""
    import torch
    import transformers

    if spec.init != "pretrained" or not spec.local or getattr(spec, "allow_missing_weights", False):
        return
    found = _checkpoint_tensors(spec.path)
    if found is None:
        return  # pickled weights: checked when loaded
    config = load_config(spec)
    auto_cls = getattr(transformers, auto_cls_name)
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = auto_cls.from_config(config)
    except Exception:  # noqa: BLE001 - an architecture this task cannot build: the loader says so per cell
        return
    prefix = getattr(model, "base_model_prefix", "") or ""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    tied = {n: names for names in groups.values() if len(names) > 1 for n in names}

    def target(key: str) -> str | None:
        if key in expected:
            return key
        if prefix and key.startswith(prefix + ".") and key[len(prefix) + 1:] in expected:
            return key[len(prefix) + 1:]
        if prefix and f"{prefix}.{key}" in expected:
            return f"{prefix}.{key}"
        return None

    covered, unexpected, wrong_shape = set(), [], []
    for key, shape in found.items():
        t = target(key)
        if t is None:
            if not (new_head and _in_head(model, key)):
                unexpected.append(key)
            continue
        covered.add(t)
        if tuple(shape) != expected[t] and not (new_head and _in_head(model, t)):
            wrong_shape.append(t)
    missing = [k for k in expected if k not in covered and not any(n in covered for n in tied.get(k, ()))
               and not (new_head and _in_head(model, k))]
    del model
    if not (missing or unexpected or wrong_shape):
        return
    extra = {"ignore_mismatched_sizes": True} if new_head else {}
    loaded = load_hf_model(spec.model_copy(update={"dtype": "float32", "device": "cpu"}), auto_cls_name,
                           device="cpu", new_head=new_head, **extra)  # raises the error transformers' report gives
    del loaded
