"""Progress a person can follow: one line at most every ``every`` seconds for a long piece of work.

    progress = Progress("remedies: adding problem", total=20_000, unit="steps")
    for done in ...:              # e.g. at every chunk boundary of a chunked training
        progress.update(done)
    progress.close()

Each line says what is running, how much is done out of the total, the elapsed time and the
estimated time left. Lines go to standard output (the main job prefixes them with the stage's name).
"""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class Progress:
    """A progress line for ``total`` units of work, printed at most every ``every`` seconds."""

    def __init__(self, label: str, total: int, *, unit: str = "steps", every: float = 10.0, stream=None):
        self.label, self.total, self.unit, self.every = label, int(total), unit, float(every)
        self.stream = sys.stdout if stream is None else stream
        self.start = self.last = time.monotonic()
        self.done = 0

    def line(self, done: int | None = None) -> str:
        done = self.done if done is None else done
        elapsed = time.monotonic() - self.start
        text = f"{self.label}: {done:,}/{self.total:,} {self.unit}, {_clock(elapsed)} elapsed"
        if 0 < done < self.total:
            text += f", about {_clock(elapsed * (self.total - done) / done)} left"
        return text

    def update(self, done: int) -> None:
        """Record ``done`` units finished; print a line when ``every`` seconds passed since the last."""
        self.done = int(done)
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to print unless a line was printed before (short work stays quiet)."""
        if self.last != self.start:
            print(self.line(), file=self.stream, flush=True)
