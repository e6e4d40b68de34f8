import numpy as np
import pytest

from selftaught.lm.tokenizer import BOS, EOS, PAD, SEP, CharTokenizer


@pytest.fixture
def tok():
    return CharTokenizer("0123456789+=")


def test_ids_and_round_trip(tok):
    assert (PAD, BOS, EOS, SEP) == (0, 1, 2, 3)
    assert tok.vocab_size == 4 + 12
    assert tok.encode("10+") == [5, 4, 14]
    for text in ["", "12+34=46", "9"]:
        assert tok.decode(tok.encode(text)) == text


def test_decode_stops_at_eos_and_skips_specials(tok):
    ids = [BOS, *tok.encode("12"), SEP, *tok.encode("3"), EOS, *tok.encode("99"), PAD]
    assert tok.decode(ids) == "123"
    assert tok.decode_batch(np.array([[5, EOS, 6], [PAD, 6, 7]])) == ["1", "23"]


def test_unknown_char_names_it(tok):
    with pytest.raises(ValueError, match="'x'"):
        tok.encode("1x2")
    with pytest.raises(ValueError, match="duplicate"):
        CharTokenizer("aab")


def test_encode_sft_layout_and_mask(tok):
    out = tok.encode_sft(["1+2=", "10+20="], ["3", "30"], max_len=12)
    t, m = out["tokens"], out["loss_mask"]
    assert t.dtype == np.int32 and m.dtype == np.float32 and t.shape == m.shape == (2, 12)
    row0 = [BOS, *tok.encode("1+2="), SEP, *tok.encode("3"), EOS]
    assert t[0, : len(row0)].tolist() == row0 and (t[0, len(row0):] == PAD).all()
    # mask[t] = 1 iff token t+1 is a completion token or the EOS
    for b in range(2):
        targets = np.append(t[b, 1:], PAD)
        sep_at = int(np.argmax(t[b] == SEP))
        expect = (np.arange(12) >= sep_at) & (targets != PAD)
        assert m[b].astype(bool).tolist() == expect.tolist()
    assert m[0].sum() == 2 and m[1].sum() == 3  # "3"+EOS, "30"+EOS


def test_encode_sft_too_long_names_max_len(tok):
    with pytest.raises(ValueError, match="max_len=5"):
        tok.encode_sft(["123"], ["4"], max_len=5)


def test_encode_prompts_left_padded_ending_at_sep(tok):
    out = tok.encode_prompts(["1+2=", "", "12+34="], max_prompt_len=9)
    t, m = out["tokens"], out["mask"]
    assert t.shape == (3, 9) and m.dtype == bool
    assert (t[:, -1] == SEP).all()
    assert t[0].tolist() == [PAD] * 3 + [BOS, *tok.encode("1+2="), SEP]
    assert m.sum(1).tolist() == [6, 2, 8]
    assert ((t == PAD) == ~m).all()
    with pytest.raises(ValueError, match="max_prompt_len=4"):
        tok.encode_prompts(["1+2="], 4)
