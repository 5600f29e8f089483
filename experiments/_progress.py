"""Progress a person can follow: one line at most every ``every`` seconds for a long piece of work.

    progress = Progress("remedies: adding problem", total=20_000, unit="steps")
    for done in ...:              # e.g. at every chunk boundary of a chunked training
        progress.update(done)
    progress.close()

Each line says what is running, how much is done out of the total, the elapsed time and the
estimated time left (elapsed x remaining / done, the rate so far). Lines go to standard output (the
main job prefixes them with the stage's name). Work that ends within ``every`` seconds prints nothing.

``every`` defaults to :func:`progress_every`: ``$RNNJAX_PROGRESS_EVERY`` seconds (at least 0.1), else 10 (a batch
job's log may want 300; every command checks the value before any work, :func:`experiments._cli.entry`).
"""

from __future__ import annotations

import math
import os
import sys
import time

EVERY_ENV = "RNNJAX_PROGRESS_EVERY"
DEFAULT_EVERY = 10.0  # seconds between progress lines
MIN_EVERY = 0.1  # less would flood the output (and spin the main job's heartbeat thread)


def progress_every() -> float:
    """Seconds between progress lines: ``$RNNJAX_PROGRESS_EVERY`` when set (a finite number >= 0.1), else 10;
    set to nothing but spaces, it counts as unset.

    Raises ValueError naming the variable for anything else."""
    text = os.environ.get(EVERY_ENV, "").strip()
    if not text:
        return DEFAULT_EVERY
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= MIN_EVERY):
        raise ValueError(f"{EVERY_ENV}={text!r}: the seconds between progress lines must be a finite number >= "
                         f"{MIN_EVERY:g} (unset: {DEFAULT_EVERY:g})")
    return value


def clock(seconds: float) -> str:
    """``"42 s"`` below a minute, else ``"m:ss"`` (``"1:05"``); negative times read as 0."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class Progress:
    """A progress line for ``total`` units of work, printed at most every ``every`` seconds
    (default :func:`progress_every`).

    ``clock`` (default :func:`time.monotonic`) and ``stream`` (default standard output) are there for tests.
    """

    def __init__(self, label: str, total: int, *, unit: str = "steps", every: float | None = None, stream=None,
                 clock=time.monotonic):
        if int(total) < 1:
            raise ValueError(f"Progress: total must be at least 1, got {total}")
        self.label, self.total, self.unit = label, int(total), unit
        self.every = progress_every() if every is None else float(every)
        self.stream, self.clock = stream, clock
        self.start = self.last = clock()
        self.done, self.printed = 0, False

    def line(self, done: int | None = None) -> str:
        """``"<label>: 1,200/20,000 steps (6%), 12 s elapsed, about 3:08 left"``."""
        done = self.done if done is None else done
        elapsed = self.clock() - self.start
        text = f"{self.label}: {done:,}/{self.total:,} {self.unit} ({done / self.total:.0%}), {clock(elapsed)} elapsed"
        if 0 < done < self.total:
            text += f", about {clock(elapsed * (self.total - done) / done)} left"
        return text

    def _print(self) -> None:
        print(self.line(), file=sys.stdout if self.stream is None else self.stream, flush=True)
        self.printed = True

    def update(self, done: int) -> None:
        """Record ``done`` units finished; print a line when ``every`` seconds passed since the last."""
        self.done = int(done)
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self._print()

    def close(self) -> None:
        """The final line, if any line was printed before (short work stays quiet)."""
        if self.printed:
            self._print()


class StageLog:
    """The experiments' stage lines, ``[name   12.3s] message``: the seconds since ``start`` (default: now).

        say = StageLog("remedies")
        say("1/3 clipping")           # [remedies    0.8s] 1/3 clipping
        say.elapsed()                 # seconds since start, for the experiment's own timings
    """

    def __init__(self, name: str, start: float | None = None, *, stream=None):
        self.name, self.stream = name, stream
        self.start = time.perf_counter() if start is None else start

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, message: str) -> None:
        print(f"[{self.name} {self.elapsed():6.1f}s] {message}", file=self.stream or sys.stdout, flush=True)
