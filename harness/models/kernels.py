"""CPU speed levers for decoding: ``kernels: onednn`` on a model entry, and the allocator setting
every CPU decode gets (:func:`keep_freed_memory`).

Every ``nn.Linear`` of a loaded model is replaced by :class:`PackedLinear`, which keeps its
weight prepacked once in oneDNN's blocked layout and calls oneDNN's inner-product primitive
directly (the op torch's inductor emits for frozen CPU Linear layers). A plain ``F.linear``
goes through MKL's sgemm, which on this project's AMD machine runs the 512 x 58k output
projection at about half the speed of the prepacked oneDNN kernel (measured in
``benchmarks/decode_speed.py``); ``torch.utils.mkldnn.to_mkldnn`` prepacks too but converts
every activation to and from oneDNN's tensor format at each call, which costs more than it
saves on the small layers.

Results agree with ``F.linear`` to a few ulps (the summation order differs), so outputs can
differ from the default kernels at near-ties; the decode_speed benchmark prints how many do.
Inference only (no gradients), float32, CPU. Not here: int8 (``dtype: int8``), GPUs (cuBLAS
already is the fast path there).

``kernels: auto`` (the default) takes oneDNN where it is the same model: CPU, float32, engine
transformers, an x86 CPU with AVX2 or better, a torch build with the ops, and a load-time probe
(:mod:`.probe`: teacher-forced log-probabilities of seeded inputs, default kernels against packed
ones) within :data:`PROBE_TOLERANCE`. Otherwise the default kernels run. :func:`apply_kernels`
makes the choice and returns it as a :class:`KernelChoice`, which every cell records.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BATCH_HINT = 64
"""Rows the packed layout is tuned for (sentences x beams of a typical decoding step). Any row
count works; 16..128 measured alike here, 1 was up to 40% slower on the small layers."""


def available() -> bool:
    """Whether this torch build has the oneDNN ops PackedLinear calls."""
    import torch

    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_reorder_linear_weight") \
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")


PROBE_TOLERANCE = 1e-4
"""Largest |difference| of a probe log-probability that ``kernels: auto`` accepts from oneDNN.
Measured: 2e-7..3e-6 (tiny test models, Marian-base, 20+ architectures); the GEMMs round the
same products in another order, nothing more. A kernel bug or a layout mix-up moves them by
0.01 and more. Comparable to what changing the thread count does to the default kernels."""


@dataclass(frozen=True)
class KernelChoice:
    """Which kernels a loaded model runs, asked for and used, and why (``record()`` goes into the
    cell's cell.json)."""

    asked: str  # auto | default | onednn
    used: str  # default | onednn | int8
    reason: str  # one line: why these kernels
    probe_gap: float | None = None  # largest probe log-probability difference, when probed
    step: str | None = None  # what computes a decoding step: harness (its own Marian step) | transformers
    step_reason: str | None = None
    step_gap: float | None = None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"asked": self.asked, "used": self.used, "reason": self.reason}
        for name in ("probe_gap", "step", "step_reason", "step_gap"):
            value = getattr(self, name)
            if value is not None:
                out[name] = float(f"{value:.3g}") if isinstance(value, float) else value
        return out


def auto_problem(device: str, float32: bool) -> str | None:
    """Why ``kernels: auto`` keeps the default kernels on this device and dtype without probing
    (None: oneDNN is worth a probe)."""
    import torch

    if device != "cpu":
        return f"device {device}: oneDNN packing is a CPU lever"
    if not float32:
        return "not float32: oneDNN packing is for float32 Linear layers"
    if not available():
        return f"torch {torch.__version__} has no oneDNN prepacked linear ops"
    machine = platform.machine().lower()
    capability = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "unknown"
    if machine not in ("x86_64", "amd64") or capability not in ("AVX2", "AVX512"):
        # measured on x86 only; oneDNN on Arm (ACL) is not known to beat the default GEMM
        return f"CPU {machine} ({capability}): oneDNN packing is measured on x86 with AVX2 or better only"
    return None


def apply_kernels(model: Any, asked: str, device: str, *, reload: Callable[[], Any] | None = None,
                  tolerance: float = PROBE_TOLERANCE) -> tuple[Any, KernelChoice]:
    """The model with the kernels ``asked`` for (``auto``, ``default`` or ``onednn``) and the
    choice made. ``auto`` probes: the probe's log-probabilities with the default kernels, then
    with oneDNN; beyond ``tolerance`` the model is reloaded with ``reload()`` (packing replaced its
    layers) and runs the default kernels. ``onednn`` packs without a probe (asked for: the caller
    checked the device and dtype at the config edge)."""
    import torch

    if asked == "default":
        return model, KernelChoice("default", "default", "asked for")
    if asked == "onednn":
        return pack_linear_layers(model), KernelChoice("onednn", "onednn", "asked for")
    float32 = all(p.dtype == torch.float32 for p in model.parameters())
    problem = auto_problem(device, float32)
    if problem is None and not (any(type(m) is torch.nn.Linear for m in model.modules()) or _has_conv1d(model)):
        problem = "no float32 Linear layers to pack"
    if problem is not None:
        return model, KernelChoice("auto", "default", problem)
    from .probe import logprob_gap, probe_inputs, probe_logprobs

    inputs = probe_inputs(model.config)
    before = probe_logprobs(model, inputs)
    model = pack_linear_layers(model)
    gap = logprob_gap(before, probe_logprobs(model, inputs))
    if gap <= tolerance:
        return model, KernelChoice("auto", "onednn", f"CPU float32 ({torch.backends.cpu.get_cpu_capability()}): "
                                   f"probe log-probabilities within {tolerance:g} of the default kernels", gap)
    why = f"probe log-probabilities differ by {gap:.3g} > {tolerance:g} with oneDNN"
    if reload is None:
        raise ValueError(f"kernels auto: {why}, and the model cannot be reloaded")
    return reload(), KernelChoice("auto", "default", why, gap)


def _has_conv1d(model: Any) -> bool:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover
        return False
    return any(isinstance(m, Conv1D) for m in model.modules())


_packed_linear_class = None


def packed_linear_class():
    """The :class:`PackedLinear` module class (built on first use: torch is imported lazily)."""
    global _packed_linear_class
    if _packed_linear_class is not None:
        return _packed_linear_class
    import torch

    class PackedLinear(torch.nn.Module):
        """``y = x W^T + b`` with W prepacked for oneDNN. ``weight`` stays the dense tensor when it is
        shared with another module (tied embeddings), so nothing reading it breaks."""

        harness_foldable = True  # fold_final_logits_bias may move a head's bias into it

        def __init__(self, linear: torch.nn.Linear, shared_weight: bool):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.register_buffer("packed", torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), BATCH_HINT),
                                 persistent=False)
            self.bias = None if linear.bias is None else linear.bias.detach()
            self.weight = linear.weight if shared_weight else None  # the tied Parameter itself

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, oneDNN prepacked"

    _packed_linear_class = PackedLinear
    return PackedLinear


def pack_linear_layers(model: Any) -> Any:
    """Replace every float32 ``nn.Linear`` of ``model`` (GPT-2-style ``Conv1D`` layers first become
    Linear ones, :func:`conv1d_as_linear`) by a :class:`PackedLinear`, in place; returns the model,
    in eval mode. Linear layers whose weight another module also uses (a tied output projection)
    keep that dense weight as ``.weight``."""
    import torch

    PackedLinear = packed_linear_class()
    conv1d_as_linear(model)
    owners: dict[int, int] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owners[id(p)] = owners.get(id(p), 0) + 1
    model.eval()
    # (parent, name) pairs, not the layers: a replaced layer's dense weight is freed at once, so
    # packing never holds two copies of the model's weights
    targets = [(parent, name) for parent in model.modules() for name, child in parent.named_children()
               if type(child) is torch.nn.Linear and child.weight.dtype == torch.float32]
    with torch.no_grad():
        for parent, name in targets:
            child = getattr(parent, name)
            shared = owners.get(id(child.weight), 0) > 1
            setattr(parent, name, PackedLinear(child, shared))
            del child
        fold_final_logits_bias(model)
    return model


def conv1d_as_linear(model: Any) -> Any:
    """Replace transformers' ``Conv1D`` layers (GPT-2 and its kin: ``y = x W + b`` with ``W`` stored
    as in x out) by the equal ``nn.Linear`` (weight ``W^T``), in place. Inference-only rewrites
    that act on Linear layers (oneDNN packing here, int8 quantization in :mod:`harness.models.hf`)
    then reach every block of such a model, not only its output projection."""
    import torch

    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - a transformers without it has no such layers either
        return model
    with torch.no_grad():
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, Conv1D):
                    w = child.weight  # (in, out)
                    linear = torch.nn.Linear(w.shape[0], w.shape[1], bias=child.bias is not None, device=w.device,
                                             dtype=w.dtype)
                    linear.weight.copy_(w.t())
                    if child.bias is not None:
                        linear.bias.copy_(child.bias)
                    setattr(parent, name, linear)
    return model


FOLDABLE_HEADS = ("marian", "bart", "mbart", "pegasus", "blenderbot")
"""model_types whose head is exactly ``lm_head(decoder_output) + final_logits_bias`` and whose
seq2seq base model is ``.model`` (read in transformers 4.55 and 5.x)."""


def fold_final_logits_bias(model: Any) -> bool:
    """BART-family heads add ``final_logits_bias`` to the output projection's result: one more
    pass over rows x vocabulary per decoding step (3.4 ms of a 115 ms beam-5 step here). With
    the projection prepacked, the bias moves into its epilogue and the buffer is zeroed, so
    ``model(...)`` still returns the same logits; a decoding step that calls :func:`split_head`'s
    base model and head itself skips the zero addition as well. Returns whether it folded."""
    bias, head = getattr(model, "final_logits_bias", None), getattr(model, "lm_head", None)
    if getattr(model.config, "model_type", None) not in FOLDABLE_HEADS or bias is None \
            or not getattr(head, "harness_foldable", False) or head.bias is not None \
            or getattr(model, "model", None) is None:
        return False
    head.bias = bias.detach().reshape(-1).clone()
    bias.zero_()
    model.harness_split_head = (model.model, head)
    return True


def split_head(model: Any):
    """``(base_model, head)`` when :func:`fold_final_logits_bias` folded the model's head (logits =
    ``head(base_model(...).last_hidden_state)``), else None."""
    return getattr(model, "harness_split_head", None)


HEAD_CALL_BYTES = 24 << 20
"""Logits one head call returns at most, below glibc's largest mmap threshold (32 MB; see
:class:`BlockedHead`)."""


class BlockedHead:
    """A decoding session's output projection: ``head(x)`` (+ ``bias``) for the rows ``x``.

    Up to HEAD_CALL_BYTES of logits: one call, a fresh tensor (glibc serves it from memory freed at
    the last step, see :func:`keep_freed_memory`). Beyond, a fresh tensor would be above glibc's
    largest mmap threshold (32 MB: 145 rows of a 58k vocabulary, beam 5 over 29 sentences; 32 rows
    of mBART's 250k), so every step would map and page-fault it again (measured: the int8 head at
    160 rows 14 -> 32 ms a call, 9k faults): the head then runs on row blocks below the limit,
    copied into one buffer this object keeps (valid until the next call). One per session, so the
    buffer goes with it. CPU only: elsewhere the head is called once."""

    def __init__(self, head: Any, bias: Any = None):
        self.head, self.bias = head, bias
        self.vocab = getattr(head, "out_features", None)
        self.buffer = None

    def __call__(self, x):
        import torch

        rows = x.shape[0]
        per_call = max(1, HEAD_CALL_BYTES // (self.vocab * x.element_size())) if self.vocab else rows
        if rows <= per_call or x.device.type != "cpu":
            logits = self.head(x)
            return logits if self.bias is None else logits + self.bias
        if self.buffer is None or self.buffer.shape[0] < rows:
            self.buffer = torch.empty((rows, self.vocab), dtype=x.dtype, device=x.device)
        out = self.buffer[:rows]
        for i in range(0, rows, per_call):
            y = self.head(x[i:i + per_call])
            out[i:i + per_call].copy_(y if self.bias is None else y.add_(self.bias))
        return out


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
_allocator_tuned = False


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks of up to 32 MB for reuse instead of returning them to
    the OS. A decoding step allocates several rows x vocabulary float tensors (80 x 58k = 18 MB
    for 16 sentences x 5 beams): by default glibc serves each from a fresh mmap and unmaps it
    when freed, so every step page-faults the same memory in again (measured: 330k minor faults
    and 6% of a beam-5 decode's CPU time; CTranslate2 has its own caching allocator). The cost is
    that the process's resident memory does not shrink after its peak.

    Process-wide and idempotent; a no-op (False) off glibc (macOS, musl) or when ``mallopt`` refuses."""
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # the mmap threshold first: setting the trim threshold alone turns off glibc's adaptive mmap
    # threshold and makes every large block an mmap (measured: 45% slower)
    _allocator_tuned = bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    return _allocator_tuned
