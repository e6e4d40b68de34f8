"""Character-level tokenizer with four special tokens, and batch encoders.

Ids: PAD=0, BOS=1, EOS=2, SEP=3, then the alphabet's characters in order (id 4 + index).

Two batch layouts:
- `encode_sft`: training rows `BOS prompt SEP completion EOS`, RIGHT-padded with PAD.
- `encode_prompts`: sampler prompts `BOS prompt SEP`, LEFT-padded so every row ends at its
  SEP (the sampler appends new tokens at the same column for every row).

Loss-mask convention (used by `encode_sft`, `lm.train.masked_xent`, `token_logprobs`):
the mask is aligned with the INPUT positions and the target of position t is token t+1.
`loss_mask[b, t] = 1` exactly when `tokens[b, t + 1]` is a completion token or the final EOS,
i.e. for t from the SEP's position up to the position just before the EOS. Prompt tokens
(and BOS, SEP themselves as targets) never contribute to the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD, BOS, EOS, SEP = 0, 1, 2, 3
NUM_SPECIAL = 4


class CharTokenizer:
    """Maps each character of `alphabet` to one id; specials take ids 0..3."""

    def __init__(self, alphabet: str):
        if len(set(alphabet)) != len(alphabet):
            dup = sorted({c for c in alphabet if alphabet.count(c) > 1})
            raise ValueError(f"alphabet has duplicate characters {dup}; list each once")
        self.alphabet = alphabet
        self._to_id = {c: NUM_SPECIAL + i for i, c in enumerate(alphabet)}
        self.pad_id, self.bos_id, self.eos_id, self.sep_id = PAD, BOS, EOS, SEP

    @property
    def vocab_size(self) -> int:
        return NUM_SPECIAL + len(self.alphabet)

    def __repr__(self) -> str:
        return f"CharTokenizer({self.alphabet!r})"

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of `text` (no special tokens added)."""
        out = []
        for i, c in enumerate(text):
            tid = self._to_id.get(c)
            if tid is None:
                raise ValueError(
                    f"character {c!r} at index {i} of {text[:40]!r} is not in the alphabet "
                    f"{self.alphabet!r}; add it to the task's alphabet"
                )
            out.append(tid)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`: stops at the first EOS, skips PAD/BOS/SEP."""
        chars = []
        for tid in np.asarray(ids).reshape(-1).tolist():
            if tid == EOS:
                break
            if tid < NUM_SPECIAL:
                continue
            if tid >= self.vocab_size:
                raise ValueError(f"token id {tid} is outside the vocabulary ({self.vocab_size})")
            chars.append(self.alphabet[tid - NUM_SPECIAL])
        return "".join(chars)

    def decode_batch(self, tokens_BxN) -> list[str]:
        """`decode` of each row."""
        return [self.decode(row) for row in np.asarray(tokens_BxN)]

    def encode_sft(
        self, prompts: Sequence[str], completions: Sequence[str], max_len: int
    ) -> dict[str, np.ndarray]:
        """Right-padded `BOS prompt SEP completion EOS` rows and their loss mask.

        Returns dict(tokens=int32[B, max_len], loss_mask=float32[B, max_len]); see the module
        docstring for the mask convention (mask[t] = 1 iff token t+1 is completion or EOS).
        """
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        B = len(prompts)
        tokens_BxT = np.full((B, max_len), PAD, np.int32)
        mask_BxT = np.zeros((B, max_len), np.float32)
        for b, (p, c) in enumerate(zip(prompts, completions)):
            pid, cid = self.encode(p), self.encode(c)
            row = [BOS, *pid, SEP, *cid, EOS]
            if len(row) > max_len:
                raise ValueError(
                    f"row {b} needs {len(row)} tokens (prompt {len(pid)} + completion "
                    f"{len(cid)} + 3 specials) but max_len={max_len}; raise max_len"
                )
            tokens_BxT[b, : len(row)] = row
            sep_at = 1 + len(pid)
            mask_BxT[b, sep_at : len(row) - 1] = 1.0
        return dict(tokens=tokens_BxT, loss_mask=mask_BxT)

    def encode_prompts(self, prompts: Sequence[str], max_prompt_len: int) -> dict[str, np.ndarray]:
        """Left-padded `BOS prompt SEP` rows: dict(tokens=int32[B, P], mask=bool[B, P])."""
        B = len(prompts)
        tokens_BxP = np.full((B, max_prompt_len), PAD, np.int32)
        mask_BxP = np.zeros((B, max_prompt_len), bool)
        for b, p in enumerate(prompts):
            row = [BOS, *self.encode(p), SEP]
            if len(row) > max_prompt_len:
                raise ValueError(
                    f"prompt {b} needs {len(row)} tokens (with BOS and SEP) but "
                    f"max_prompt_len={max_prompt_len}; raise max_prompt_len"
                )
            tokens_BxP[b, max_prompt_len - len(row) :] = row
            mask_BxP[b, max_prompt_len - len(row) :] = True
        return dict(tokens=tokens_BxP, mask=mask_BxP)
