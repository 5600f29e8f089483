"""The character data of Experiment 2."""

import numpy as np
import pytest

from rnnjax.data.text import SENTENCE, build_vocab, char_segments, encode, fox_segments, one_hot, repeated_text


def test_default_corpus_vocabulary_and_segments():
    text = repeated_text()
    assert len(text) == 43 * 200 + 199
    assert text.startswith(SENTENCE + " " + SENTENCE[:3])
    seg = fox_segments()
    assert seg.vocab == tuple(" abcdefghijklmnopqrstuvwxyz")
    assert seg.inputs.shape == (175, 50, 27) and seg.inputs.dtype == np.float32
    assert seg.targets.shape == (175, 50) and seg.targets.dtype == np.int32
    np.testing.assert_array_equal(seg.inputs.sum(-1), 1.0)  # exactly one hot
    decode = lambda codes: "".join(seg.vocab[i] for i in codes)
    assert decode(seg.inputs[0].argmax(-1)) == text[:50]
    assert decode(seg.targets[0]) == text[1:51]
    assert decode(seg.inputs[3].argmax(-1)) == text[150:200]  # non-overlapping
    assert decode(seg.targets[-1]) == text[174 * 50 + 1 : 175 * 50 + 1]
    # the next-character target of a step is the input of the following step
    np.testing.assert_array_equal(seg.inputs[:, 1:].argmax(-1), seg.targets[:, :-1])


def test_small_hand_case():
    seg = char_segments("abcab", 2)
    assert seg.vocab == ("a", "b", "c")
    np.testing.assert_array_equal(seg.targets, [[1, 2], [0, 1]])
    np.testing.assert_array_equal(seg.inputs.argmax(-1), [[0, 1], [2, 0]])
    np.testing.assert_array_equal(encode("cab", seg.vocab), [2, 0, 1])
    np.testing.assert_array_equal(one_hot(np.array([1]), 3), [[0.0, 1.0, 0.0]])
    assert build_vocab("ba a") == (" ", "a", "b")


def test_bad_inputs():
    with pytest.raises(ValueError, match="text must be a non-empty string"):
        char_segments("", 5)
    with pytest.raises(ValueError, match="segment_length must be an integer >= 2"):
        char_segments("abcdef", 1)
    with pytest.raises(ValueError, match="needs at least 6"):
        char_segments("abcde", 5)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encode("abz", ("a", "b"))
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        repeated_text(SENTENCE, 0)
    with pytest.raises(ValueError, match="codes must lie in"):
        one_hot(np.array([3]), 3)
