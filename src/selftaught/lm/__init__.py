"""Language-model building blocks: tokenizer, tiny decoder, KV-cached sampler, trainers.

Also `lm.generate` (N verified samples per prompt) and `lm.data` (row packing, pairs).
"""

from selftaught.lm.metrics import maj_at_k, majority_vote, pass_at_k
from selftaught.lm.model import (
    KVCache,
    Transformer,
    TransformerConfig,
    count_params,
    decode,
    default_positions,
    forward,
    init_cache,
    init_params,
)
from selftaught.lm.sampler import SampleOutput, sample, unsampleable
from selftaught.lm.tokenizer import BOS, EOS, PAD, SEP, CharTokenizer
from selftaught.lm.train import (
    SFT,
    SFTState,
    TrainConfig,
    Trainer,
    TrainState,
    check_losses,
    dpo_loss,
    fit,
    make_dpo_loss,
    make_optimizer,
    make_orm_loss,
    make_sft,
    make_sft_loss,
    make_trainer,
    masked_xent,
    next_token_targets,
    orm_init,
    orm_logits,
    orm_scores,
    params_of,
    sequence_logprobs,
    token_logprobs,
)

__all__ = [
    "BOS", "EOS", "PAD", "SEP", "SFT", "CharTokenizer", "KVCache", "SFTState", "SampleOutput",
    "TrainConfig", "Transformer", "TransformerConfig", "check_losses", "count_params", "decode",
    "default_positions", "dpo_loss", "fit", "forward", "init_cache", "init_params", "maj_at_k",
    "majority_vote", "make_optimizer", "make_sft", "masked_xent", "next_token_targets",
    "params_of", "pass_at_k", "sample", "token_logprobs", "unsampleable",
    "TrainState", "Trainer", "make_dpo_loss", "make_orm_loss", "make_sft_loss", "make_trainer",
    "orm_init", "orm_logits", "orm_scores", "sequence_logprobs",
]
