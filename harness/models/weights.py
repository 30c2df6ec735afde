"""Whether a model directory's files can be what they claim, read without torch and without loading.

- :func:`safetensors_problem`: a ``.safetensors`` file whose header is not one (not JSON, too
  big), names a dtype safetensors does not have, gives tensors whose shape does not fill their byte
  range, ranges that overlap or leave holes, or a file shorter (truncated) or longer than its
  header says;
- :func:`sharded_index_problem`: a ``model.safetensors.index.json`` naming shards that are missing;
- :func:`zip_checkpoint_problem`: a zip ``.bin`` checkpoint holding more than one archive (torch
  reads the first ``data.pkl`` it meets, a static scan another: the two would disagree);
- :func:`tokenizer_problem`: a model directory with no tokenizer files at all (and no
  ``tokenizer:`` given), or with a tokenizer file that is empty or not JSON;
- :func:`weights_problems`: all of the above for one model directory, first problem per file.

Each problem is one line naming the file. The layout of a safetensors file (8-byte little-endian
header length, JSON header, then the tensors' bytes back to back) is the format's specification
(https://huggingface.co/docs/safetensors). Non-goals: whether the tensors fit the architecture
(that needs the model class: :mod:`harness.models.hf` checks what transformers reports when
loading), GGUF or other formats.
"""
from __future__ import annotations

import json
import math
import struct
import zipfile
from pathlib import Path

# bytes per element of each safetensors dtype
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
               "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8, "F4": 0.5,
               "F6_E2M3": 0.75, "F6_E3M2": 0.75}
MAX_HEADER_BYTES = 100_000_000  # the format's own limit

# what a tokenizer directory holds: any one of these lets AutoTokenizer build one
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model", "source.spm", "target.spm", "tokenizer.model", "sentencepiece.model",
                   "spm.model", "merges.txt", "vocab.model")


def safetensors_header(path: Path) -> tuple[dict, int]:
    """The header of a safetensors file and its length; ValueError with the reason otherwise."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{len(head)} bytes, shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            raise ValueError(f"its header claims {n:,} bytes (allowed {MAX_HEADER_BYTES:,}): not a safetensors file")
        raw = f.read(n)
    if len(raw) < n:
        raise ValueError(f"truncated inside its header ({len(raw):,} of {n:,} header bytes)")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"its header is not JSON ({type(e).__name__}): not a safetensors file") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object: not a safetensors file")
    return header, n


def safetensors_problem(path: Path) -> str | None:
    """What makes ``path`` an invalid or truncated safetensors file, or None."""
    try:
        header, n = safetensors_header(path)
        size = path.stat().st_size
    except OSError as e:
        return f"{path}: cannot be read: {e.strerror or e}"
    except ValueError as e:
        return f"{path}: {e}"
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not isinstance(info.get("data_offsets"), list) or \
                len(info["data_offsets"]) != 2 or not isinstance(info.get("shape"), list):
            return f"{path}: tensor '{name}' has no valid dtype/shape/data_offsets in the header"
        dtype, shape, (start, end) = info.get("dtype"), info["shape"], info["data_offsets"]
        if dtype not in DTYPE_BYTES:
            return f"{path}: tensor '{name}' has unknown dtype {dtype!r}"
        if not all(isinstance(d, int) and d >= 0 for d in [*shape, start, end]) or end < start:
            return f"{path}: tensor '{name}' has an invalid shape {shape} or byte range {start}..{end}"
        if math.prod(shape) * DTYPE_BYTES[dtype] != end - start:
            return (f"{path}: tensor '{name}' of shape {shape} ({dtype}) needs {math.prod(shape) * DTYPE_BYTES[dtype]:,} "
                    f"bytes but its range holds {end - start:,}")
        spans.append((start, end, name))
    spans.sort()
    pos = 0
    for start, end, name in spans:
        if start != pos:
            return f"{path}: tensor '{name}' {'overlaps the one before' if start < pos else 'leaves a gap'} in the data"
        pos = end
    if size < 8 + n + pos:
        return (f"{path}: truncated: {size:,} bytes, but its header describes {8 + n + pos:,} (the download or copy "
                "was cut short; fetch the file again)")
    if size > 8 + n + pos:
        return f"{path}: {size - 8 - n - pos:,} bytes after the last tensor its header describes: not a whole file"
    return None


def sharded_index_problem(index: Path) -> str | None:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        shards = sorted(set((data.get("weight_map") or {}).values()))
    except (OSError, ValueError, AttributeError, TypeError) as e:
        return f"{index}: not a valid index of sharded weights ({type(e).__name__})"
    missing = [s for s in shards if not isinstance(s, str) or not (index.parent / s).is_file()]
    if missing:
        return f"{index}: names {len(missing)} weight file(s) that are missing, e.g. {index.parent / str(missing[0])}"
    return None


def zip_checkpoint_problem(path: Path) -> str | None:
    """A zip checkpoint must hold exactly one archive (one ``<name>/data.pkl``)."""
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as z:
            pickles = [n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
    except (OSError, zipfile.BadZipFile) as e:
        return f"{path}: a damaged zip checkpoint ({e})"
    if len(pickles) > 1:
        return (f"{path}: a zip checkpoint holding {len(pickles)} archives ({', '.join(pickles[:3])}); torch reads "
                "one of them, so what it loads is not what was checked; refused (save the state dict again, or "
                "convert it to safetensors)")
    return None


def tokenizer_problem(directory: Path) -> str | None:
    """A model directory that cannot give a tokenizer: none of the files one is built from, or an
    empty or non-JSON tokenizer.json / tokenizer_config.json."""
    files = {p.name for p in directory.iterdir() if p.is_file()}
    if not files & set(TOKENIZER_FILES):
        return (f"{directory} holds no tokenizer files (none of tokenizer.json, tokenizer_config.json, vocab.*, "
                "*.spm, *.model); copy the tokenizer the model was trained with into it, or set tokenizer: on "
                "the model entry")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        p = directory / name
        if name in files:
            try:
                if p.stat().st_size == 0:
                    return f"{p}: is empty"
                json.loads(p.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as e:
                return f"{p}: not valid JSON ({type(e).__name__}: {' '.join(str(e).split())[:120]})"
    return None


def weights_problems(directory: Path) -> list[str]:
    """Every weight file of ``directory`` that is damaged (one line each)."""
    out = []
    for p in sorted(directory.iterdir()):
        if not p.is_file():
            continue
        if p.suffix == ".safetensors":
            problem = safetensors_problem(p)
        elif p.name.endswith(".safetensors.index.json"):
            problem = sharded_index_problem(p)
        elif p.suffix in (".bin", ".pt", ".pth"):
            problem = zip_checkpoint_problem(p)
        else:
            continue
        if problem:
            out.append(problem)
    return out
