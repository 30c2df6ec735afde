"""Fine-tuning: the training loop behind the fine-tuning strategies, and its checkpoint cache.

What it does
- Fine-tunes a sequence classifier (encoder + task head) or a seq2seq translation model on a
  benchmark's train split, with one of a few *objectives*: plain cross-entropy, cross-entropy on
  BERT-style masked inputs (Devlin et al. 2019: 80% [MASK], 10% random token, 10% unchanged),
  classification + lambda x masked-LM on the shared encoder, or masked-LM alone (the first stage
  of task-adaptive pre-training, Gururangan et al. 2020).
- A lean loop of its own: inputs tokenised once, length-grouped batches with dynamic padding
  (the idea of transformers' ``LengthGroupedSampler``), AdamW with the usual no-decay rule for
  biases and norms, linear warm-up/decay, gradient accumulation and clipping, optional early
  stopping on the dev split with the best weights restored, mixed precision on GPUs.
  ``benchmarks/finetune_speed.py`` compares its throughput with transformers' ``Trainer``.
- Every random choice comes from the cell's seed, through independent streams: the training
  subset, the data order, the head initialisation, dropout and the masks. Two strategies run
  with the same seed therefore start from the same head and see the same batches in the same
  order; only what their objective does differs.
- Checkpoints are cached in ``ctx.cache_dir/finetuned/`` under a hash of everything that
  determines them (model files, data content, strategy and its parameters, seed), trained into a
  temporary directory and renamed into place, so a checkpoint is either complete or absent.

Non-goals: distributed or multi-GPU training, parameter-efficient methods (LoRA, adapters),
decoder-only (causal LM) fine-tuning, and hyper-parameter search (sweep parameters in YAML).

Where things are (``from harness.training import ...`` reaches all of them):

- ``params``: FineTuneParams, MLMHeadParams, Objective, MLMStage -- what a strategy asks for;
- ``masking``: MaskingParams, Masking, MaskVocab, mask_tokens -- BERT-style corruption;
- ``corruption``: Cutoff (token and span erasure, Shen et al. 2020) and the seeded corruption of
  test inputs a strategy can ask for (corrupt_test_inputs);
- ``consistency``: js_divergence, symmetric_kl -- consistency terms between two views' predictions;
- ``views``: SecondView -- a corrupted copy of each batch trained beside the clean one;
- ``data``: seeds and subsets, tokenised splits, length-grouped batches, collate;
- ``heads``: the classifier and its task head, the masked-LM head (build, warm-up, probe);
- ``mlm_head``: MLMHead, the masked-LM head the loop trains beside (or instead of) the task head;
- ``loop``: run_loop, evaluate_loss, optimizer, schedule, mixed precision;
- ``checkpoints``: the checkpoint cache and its key;
- ``finetune``: fine_tune, which strategies call.

torch and transformers are imported inside functions only.
"""
from __future__ import annotations

from .checkpoints import (META_FILE, TRAINING_VERSION, cached_checkpoint, checkpoint_model, checkpoint_params,
                          data_fingerprint)
from .consistency import CONSISTENCY, js_divergence, symmetric_kl
from .corruption import TEST_CORRUPTION_FILE, Cutoff, corrupt_test_inputs, cutoff_count, cutoff_positions, erase
from .data import (Encoded, classification_label_ids, collate, derive_seed, encode_inputs, encode_translation,
                   length_grouped_batches, sorted_batches, subset)
from .finetune import fine_tune, quiet_transformers
from .heads import (MLM_HEAD_ARCHITECTURES, PROBE_EXAMPLES, PROBE_MASKING, float32_spec, has_pretrained_mlm_head,
                    head_labels, load_classifier, load_mlm_model, mlm_probe_loss, prepare_mlm_head, reinit_head,
                    start_new_mlm_head, warm_up_mlm_head)
from .loop import (LoopResult, autocast_for, cpu_bfloat16, evaluate_loss, lr_lambda, make_optimizer, run_loop,
                   uses_autocast)
from .masking import Masking, MaskingParams, MaskVocab, mask_tokens
from .mlm_head import MLMHead
from .params import FineTuneParams, MLMHeadParams, MLMStage, Objective
from .views import SecondView, second_view_loss

__all__ = [
    "CONSISTENCY", "Cutoff", "SecondView", "TEST_CORRUPTION_FILE", "corrupt_test_inputs", "cutoff_count",
    "cutoff_positions", "erase", "js_divergence", "second_view_loss", "symmetric_kl",
    "Encoded", "FineTuneParams", "LoopResult", "META_FILE", "MLMHead", "MLMHeadParams", "MLMStage",
    "MLM_HEAD_ARCHITECTURES", "MaskVocab", "Masking", "MaskingParams", "Objective", "PROBE_EXAMPLES",
    "PROBE_MASKING", "TRAINING_VERSION", "autocast_for", "cached_checkpoint", "checkpoint_model",
    "checkpoint_params", "classification_label_ids", "collate", "cpu_bfloat16", "data_fingerprint",
    "derive_seed", "encode_inputs", "encode_translation", "evaluate_loss", "fine_tune", "float32_spec",
    "has_pretrained_mlm_head", "head_labels", "length_grouped_batches", "load_classifier", "load_mlm_model",
    "lr_lambda", "make_optimizer", "mask_tokens", "mlm_probe_loss", "prepare_mlm_head", "quiet_transformers",
    "reinit_head", "run_loop", "sorted_batches", "start_new_mlm_head", "subset", "uses_autocast",
    "warm_up_mlm_head",
]
