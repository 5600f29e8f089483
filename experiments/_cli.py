"""What every command line of the project shares: one error path, checked flags, all-or-nothing outputs.

* :class:`UsageError` -- a mistake the user can fix. Its message names the file, flag or row and
  says what to do. :func:`entry` prints it as one line ``<name>: error: <message>`` on stderr and
  exits with status 2; ``--debug`` shows the traceback instead. Network failures (Stooq), file
  permissions and full disks take the same path; a programming error keeps its traceback.
* :class:`Parser` -- an ``argparse`` parser with ``--debug`` whose own errors are one line (ending
  with a pointer to ``--help``) and status 2; :func:`number`, :func:`learning_rate`, :func:`seed`
  are checked flag types (finite, in range), so a bad value is refused before anything is loaded
  or compiled.
* :func:`check_out` refuses an output folder that cannot be written or holds an input;
  :func:`atomic_folder` gives a fresh temporary sibling folder that replaces ``--out`` only when the
  run completed, so ``--out`` holds one whole run or the previous one, never a mix. Leftover
  temporary folders of killed runs are cleaned (or restored) at the next start.
* :func:`default_out` -- standalone runs write to ``runs/<name>-<timestamp>``, never the main job's
  ``runs/<name>``.

Exit statuses: 0 done, 1 the run or check failed (e.g. ``check_report`` found problems), 2 a user
error (nothing was written), 130 interrupted (the output folder was left as it was).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SEED_MAX = 2**31 - 1  # seeds become int32 PRNG keys


class UsageError(ValueError):
    """A user error: bad flag, file, column, row, folder or network; the message says what to do."""


# ------------------------------------------------------------------------------------ the error path

def _user_message(err: BaseException) -> str | None:
    """The one-line message of a user error, or None for a programming error (keeps its traceback)."""
    if isinstance(err, UsageError):
        return str(err)
    stooq = sys.modules.get("rnnjax.data.stooq")  # network errors; imported only when a ticker is fetched
    if stooq is not None and isinstance(err, stooq.StooqError):
        return str(err)
    if isinstance(err, OSError) and err.filename is not None:  # permissions, missing files, a full disk
        return (f"cannot use {err.filename}: {err.strerror or err}; check the path and its permissions "
                f"(nothing was written to the output folder)")
    if isinstance(err, MemoryError):
        return "out of memory; use smaller sizes (--hidden, --seeds, --quick)"
    return None


def entry(main: Callable, name: str, argv: list[str] | None = None) -> int:
    """Run ``main(argv)`` as a command: 0 on success (or the int ``main`` returns), 2 with one line for a
    user error, 130 on Ctrl-C.

    A programming error, or any error under ``--debug``, propagates with its traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        result = main(argv)
    except SystemExit as stop:  # argparse: --help (0) or a bad flag (2, already printed)
        return stop.code if isinstance(stop.code, int) else EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{name}: interrupted; the output folder was left as it was", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        message = _user_message(err)
        if message is None or debug:
            raise
        print(f"{name}: error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_USAGE
    return result if isinstance(result, int) and not isinstance(result, bool) else EXIT_OK


def run_as_command(main: Callable, name: str) -> None:
    """The ``if __name__ == "__main__"`` of every experiment: exit with :func:`entry`'s status."""
    sys.exit(entry(main, name))


@contextlib.contextmanager
def user_errors(prefix: str = "", kinds: tuple = (ValueError,)):
    """Turn the library's ``ValueError`` (which names the parameter) into a :class:`UsageError`."""
    try:
        yield
    except UsageError:
        raise
    except kinds as err:
        raise UsageError(f"{prefix}{err}") from err


class Parser(argparse.ArgumentParser):
    """``argparse`` with ``--debug``, a raw description, and one-line errors with status 2."""

    def __init__(self, name: str, doc: str | None, **kwargs):
        super().__init__(prog=f"python -m experiments.{name}", description=doc,
                         formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
        self.name = name
        self.add_argument("--debug", action="store_true",
                          help="show the full traceback of an error instead of one line")

    def error(self, message: str):
        print(f"{self.name}: error: {' '.join(message.split())} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


# ------------------------------------------------------------------------------------ checked flags

def number(kind=float, *, min=None, max=None, min_open: bool = False, max_open: bool = False,  # noqa: A002
           what: str | None = None):
    """An argparse type: a finite ``kind`` (int or float) in [min, max] (open ends with ``min_open``/``max_open``)."""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        low_ok = min is None or (value > min if min_open else value >= min)
        high_ok = max is None or (value < max if max_open else value <= max)
        if not (low_ok and high_ok):
            lo = "" if min is None else f"{'>' if min_open else '>='} {min}"
            hi = "" if max is None else f"{'<' if max_open else '<='} {max}"
            raise argparse.ArgumentTypeError(f"must be {what or ('a number' if kind is float else 'an integer')} "
                                             f"{' and '.join(x for x in (lo, hi) if x)}, got {text!r}")
        return value

    convert.__name__ = kind.__name__
    return convert


positive_int = number(int, min=1)
positive_float = number(float, min=0, min_open=True)
seed = number(int, min=0, max=SEED_MAX, what="a seed (an integer)")


def learning_rate(text: str) -> float:
    """An argparse type: a finite lr > 0 that stays > 0 and finite in float32 (the parameters' dtype)."""
    value = positive_float(text)
    try:
        as_f32 = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        as_f32 = math.inf
    if as_f32 == 0 or not math.isfinite(as_f32):
        raise argparse.ArgumentTypeError(f"{text} rounds to {as_f32:g} in float32, the parameters' dtype; "
                                         f"use a value between 1e-38 and 1e38")
    return value


def check_seed_range(first: int, count: int, flag: str = "--seed") -> None:
    """Seeds first..first+count-1 must all fit the PRNG's 32-bit key."""
    if first + count - 1 > SEED_MAX:
        raise UsageError(f"{flag} {first} with {count} seeds reaches {first + count - 1}, past the PRNG's "
                         f"largest seed {SEED_MAX}; use a smaller {flag}")


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable), or the physical memory when that is unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(needed_bytes: float, what: str, advice: str) -> None:
    """Refuse a run whose estimated working memory exceeds what the machine has free."""
    have = available_memory()
    if needed_bytes > have:
        raise UsageError(f"{what} needs about {needed_bytes / 2**30:,.1f} GiB of memory, more than the "
                         f"{have / 2**30:,.1f} GiB available; {advice}")


# ------------------------------------------------------------------------------------ output folders

def default_out(name: str, root: Path = Path("runs")) -> Path:
    """``runs/<name>-<YYYYmmdd-HHMMSS>``: a standalone run's own folder, never the main job's ``runs/<name>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = root / f"{name}-{stamp}"
    n = 2
    while out.exists():
        out, n = root / f"{name}-{stamp}-{n}", n + 1
    return out


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_out(out, *, inputs: Iterable = (), flag: str = "--out") -> Path:
    """``out`` if a run can replace it: not a file, not holding the current folder, empty or a finished
    run's (``metrics.json``), its parent writable, and holding none of ``inputs``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out} is a file, not a folder; give a folder name")
    for path in inputs:
        if path is not None and _inside(Path(path), out):
            raise UsageError(f"{flag} {out} holds the input {path}, and a run replaces the whole folder; "
                             f"choose another {flag}")
    if _inside(Path.cwd(), out):
        raise UsageError(f"{flag} {out} holds the current folder, and a run replaces the whole folder; "
                         f"give a folder of its own, e.g. {flag} runs/mine")
    if out.is_dir() and any(out.iterdir()) and not (out / "metrics.json").is_file():
        raise UsageError(f"{flag} {out} holds files but no finished run (no metrics.json), and a run replaces "
                         f"the whole folder; give a new or empty folder")
    check_writable(out.parent, flag=flag, what=out)  # the temporary sibling folder goes there
    return out


def check_writable(folder, *, flag: str = "--out", what=None) -> None:
    """Refuse unless folders can be created in ``folder`` (or its nearest existing ancestor)."""
    folder = Path(folder)
    what = folder if what is None else what
    base = folder
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise UsageError(f"{flag} {what}: {base} is a file, not a folder; choose another {flag}")
    try:  # a real probe: permission bits say nothing about read-only mounts or root
        probe = Path(tempfile.mkdtemp(prefix=".write-probe-", dir=base))
        probe.rmdir()
    except OSError as err:
        raise UsageError(f"{flag} {what}: cannot create folders in {base} ({err.strerror}); "
                         f"choose another {flag}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_of(path: Path, tag: str) -> int | None:
    """The process id in ``.<name>.<tag>-<pid>-...``, or None."""
    rest = path.name.rsplit(f".{tag}-", 1)[-1]
    head = rest.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def clean_stale(out: Path) -> list[Path]:
    """Remove temporary siblings of ``out`` left by killed runs; restore ``out`` from a killed swap.

    Returns what was removed or restored. Folders of runs still alive are left alone.
    """
    out = Path(out)
    if not out.parent.is_dir():
        return []
    done = []
    for old in sorted(out.parent.glob(f".{out.name}.old-*")):  # a swap killed between its two renames
        pid = _pid_of(old, "old")
        if pid is not None and _pid_alive(pid) and pid != os.getpid():
            continue
        if not out.exists():
            old.rename(out)
        else:
            shutil.rmtree(old, ignore_errors=True)
        done.append(old)
    for tmp in sorted(out.parent.glob(f".{out.name}.tmp-*")):
        pid = _pid_of(tmp, "tmp")
        if pid is not None and _pid_alive(pid) and pid != os.getpid():
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        done.append(tmp)
    return done


def replace_folder(new: Path, final: Path) -> None:
    """Put folder ``new`` at ``final``, replacing what was there (two renames; see :func:`clean_stale`)."""
    new, final = Path(new), Path(final)
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(out):
    """Yield a fresh temporary sibling folder of ``out``; it replaces ``out`` only if the block completes.

    Any error (or a kill) leaves ``out`` as it was; the temporary folder is removed on an error and
    by :func:`clean_stale` at the next start after a kill. The folder gets the user's umask.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_folder(tmp, out)
