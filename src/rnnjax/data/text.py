"""Character data of Experiment 2 (report §5): a sentence repeated, one-hot inputs, next-character targets.

The corpus is ``"the quick brown fox jumps over the lazy dog"`` repeated 200 times, the copies
joined by one space (so words never merge across copies: "... dog the quick ..."); 43 * 200 + 199 =
8,799 characters. The vocabulary is the sorted set of characters of the text -- for the default
corpus ``" abcdefghijklmnopqrstuvwxyz"`` (27 symbols, space first), a pangram, so every letter occurs.
Segment i holds characters [i L, (i + 1) L) as inputs and the characters one further on as
targets; segments do not overlap, and a tail shorter than L is dropped (8,798 // 50 = 175 segments).

NumPy only: this module does not import model code.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SENTENCE = "the quick brown fox jumps over the lazy dog"
REPEATS = 200
SEGMENT_LENGTH = 50


class CharSegments(NamedTuple):
    """Non-overlapping training segments of a character text."""

    inputs: np.ndarray  # (N, L, V) float32 one-hot of characters [i L, (i+1) L)
    targets: np.ndarray  # (N, L) int32 index of the next character, [i L + 1, (i+1) L + 1)
    vocab: tuple[str, ...]  # index -> character, sorted


def repeated_text(sentence: str = SENTENCE, repeats: int = REPEATS, sep: str = " ") -> str:
    """``sentence`` written ``repeats`` times, joined by ``sep`` (report §5: the sentence x 200)."""
    if not isinstance(sentence, str) or not sentence:
        raise ValueError("sentence must be a non-empty string")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    return sep.join([sentence] * repeats)


def build_vocab(text: str) -> tuple[str, ...]:
    """The sorted distinct characters of ``text``; index i of the tuple is one-hot position i."""
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    return tuple(sorted(set(text)))


def encode(text: str, vocab: tuple[str, ...]) -> np.ndarray:
    """Integer codes (len(text),) int32 of ``text`` under ``vocab``; unknown characters raise."""
    index = {c: i for i, c in enumerate(vocab)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise ValueError(f"text has characters outside the vocabulary: {missing!r}")
    return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))


def one_hot(codes: np.ndarray, size: int, dtype=np.float32) -> np.ndarray:
    """One-hot rows (..., size) of integer ``codes``."""
    codes = np.asarray(codes)
    if codes.size and (codes.min() < 0 or codes.max() >= size):
        raise ValueError(f"codes must lie in [0, {size}), got range [{codes.min()}, {codes.max()}]")
    return np.eye(size, dtype=dtype)[codes]


def char_segments(text: str, segment_length: int = SEGMENT_LENGTH, vocab: tuple[str, ...] | None = None
                  ) -> CharSegments:
    """Cut ``text`` into non-overlapping next-character segments (module docstring).

    Args:
      text: the corpus (non-empty).
      segment_length: L >= 2 characters per segment; the text needs at least L + 1 characters.
      vocab: the vocabulary; :func:`build_vocab` of ``text`` when None.

    Returns:
      :class:`CharSegments` with inputs (N, L, V), targets (N, L), N = (len(text) - 1) // L.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    if isinstance(segment_length, bool) or not isinstance(segment_length, int) or segment_length < 2:
        raise ValueError(f"segment_length must be an integer >= 2, got {segment_length!r}")
    if len(text) < segment_length + 1:
        raise ValueError(f"text has {len(text)} characters; one segment of length {segment_length} "
                         f"needs at least {segment_length + 1} (inputs plus the next character)")
    vocab = build_vocab(text) if vocab is None else tuple(vocab)
    codes = encode(text, vocab)
    n = (len(codes) - 1) // segment_length
    x = codes[: n * segment_length].reshape(n, segment_length)  # characters i L .. (i+1) L - 1
    y = codes[1 : n * segment_length + 1].reshape(n, segment_length)  # the next character of each
    return CharSegments(one_hot(x, len(vocab)), y.astype(np.int32), vocab)


def fox_segments(repeats: int = REPEATS, segment_length: int = SEGMENT_LENGTH) -> CharSegments:
    """Experiment 2's data: :data:`SENTENCE` x ``repeats`` cut into segments of ``segment_length``."""
    return char_segments(repeated_text(SENTENCE, repeats), segment_length)
