"""What every command line of the project shares: one error path, checked flags, all-or-nothing outputs.

* :class:`UsageError` -- a mistake the user can fix. Its message names the file, flag or row and
  says what to do. :func:`entry` prints it as one line ``<name>: error: <message>`` on stderr and
  exits with status 2; ``--debug`` shows the traceback instead. Network failures (Stooq), file
  permissions and full disks take the same path; a programming error keeps its traceback.
* :class:`Parser` -- an ``argparse`` parser with ``--debug`` whose own errors are one line (ending
  with a pointer to ``--help``) and status 2; :func:`number`, :func:`learning_rate`, :func:`seed`
  are checked flag types (finite, in range), so a bad value is refused before anything is loaded
  or compiled.
* :class:`Distinct` refuses a value given twice in a list flag; :func:`apply_quick` makes ``--quick``
  sizes defaults that a flag given explicitly overrides.
* :func:`check_out` refuses an output folder that cannot be written, holds an input, is in use by
  another run (:func:`out_lock`), or holds anything no run of the same experiment wrote
  (:func:`check_owner`: a user's file, a cache, another experiment's run; ``--force`` keeps such
  things, never deletes them). :func:`atomic_folder` gives a fresh temporary sibling folder that
  replaces ``--out`` only when the run completed, marked (:data:`MARKER`) with its experiment and
  files, so ``--out`` holds one whole run or the previous one, never a mix. Leftover temporary
  folders of killed runs are cleaned (or restored) at the next start.
* :func:`default_out` -- standalone runs write to ``runs/<name>-<timestamp>``, never the main job's
  ``runs/<name>``.

Exit statuses: 0 done, 1 the run or check failed (e.g. ``check_report`` found problems), 2 a user
error (nothing was written), 130 interrupted (the output folder was left as it was).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from experiments import _progress

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


def _check_environment() -> None:
    """The environment's settings, checked before any work as flags are: ``RNNJAX_PROGRESS_EVERY``."""
    try:
        _progress.progress_every()
    except ValueError as err:
        raise UsageError(str(err)) from None


def entry(main: Callable, name: str, argv: list[str] | None = None) -> int:
    """Run ``main(argv)`` as a command: 0 on success (or the int ``main`` returns), 2 with one line for a
    user error, 130 on Ctrl-C.

    A programming error, or any error under ``--debug``, propagates with its traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        _check_environment()
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
    """The ``if __name__ == "__main__"`` of every experiment: exit with :func:`entry`'s status.

    After Ctrl-C (130) the process ends at once (``os._exit``, once the output folder is restored and
    the streams flushed): a compiled program still running on XLA's threads would otherwise crash the
    interpreter's teardown (measured: SIGSEGV, exit -11, instead of 130).
    """
    code = entry(main, name)
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


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


def add_seed_base(parser: argparse.ArgumentParser, *, max: int = SEED_MAX, group=None) -> None:  # noqa: A002
    """``--seed-base B`` (alias ``--seed``; ``dest="seed"``, default 0): the base every PRNG seed of the
    experiment derives from -- its initialisations and any data it generates. Two bases share no seed,
    so a verdict can be checked on a second draw (issue 19, item 4)."""
    (group or parser).add_argument("--seed-base", "--seed", dest="seed", type=number(int, min=0, max=max,
                                   what="a seed base (an integer)"), default=0, metavar="B",
                                   help="base of every PRNG seed (initialisations and generated data); two bases "
                                        "share no seed (default: 0)")


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


class Distinct(argparse.Action):
    """``action=`` of a list flag (``nargs="+"``): a value given twice is refused, never counted twice."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen, twice = set(), []
        for v in values:
            if v in seen and v not in twice:
                twice.append(v)
            seen.add(v)
        if twice:
            parser.error(f"argument {option_string}: values must be distinct; "
                         f"{', '.join(map(str, twice))} given twice")
        setattr(namespace, self.dest, values)


_UNSET = object()


def given_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The ``dest`` of every flag given explicitly in ``argv`` (a second parse in which no default applies)."""
    dests = vars(parser.parse_args(argv))
    probe = parser.parse_args(argv, argparse.Namespace(**dict.fromkeys(dests, _UNSET)))
    return {k for k, v in vars(probe).items() if v is not _UNSET}


def apply_quick(parser: argparse.ArgumentParser, argv: list[str] | None, args, sizes: dict):
    """``--quick``: ``sizes`` replace the defaults; a flag given explicitly keeps its value. Returns ``args``."""
    given = given_flags(parser, argv)
    for key, value in sizes.items():
        if key not in given:
            setattr(args, key, list(value) if isinstance(value, list) else value)
    return args


def check_seed_base(base: int, count: int) -> None:
    """Seeds base*count..(base+1)*count-1 (``--seed-base`` with ``count`` seeds) must fit the PRNG's 32-bit key."""
    if (base + 1) * count - 1 > SEED_MAX:
        raise UsageError(f"--seed-base {base} with {count} seeds reaches seed {(base + 1) * count - 1}, past the "
                         f"PRNG's largest seed {SEED_MAX}; use a smaller --seed-base")


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


MARKER = ".rnnjax-run.json"  # in every finished run folder: {"experiment": name, "files": [what the run wrote]}
MAIN_JOB_MARK = ".made-by-reproduce"  # in the main job's folders: a standalone run never takes them over
_OWN_NAMES = (MARKER, MAIN_JOB_MARK)


def add_force(parser: argparse.ArgumentParser) -> None:
    """``--force``: run into an ``--out`` holding files no run of this experiment wrote; they are kept."""
    parser.add_argument("--force", action="store_true",
                        help="run into an --out that holds files or folders no run of this experiment wrote; "
                             "they are kept beside the new results, never deleted")


def read_marker(folder) -> dict | None:
    """The finished-run marker of ``folder`` (:data:`MARKER`), or None when it has none or it is unreadable."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(marker, dict) and isinstance(marker.get("experiment"), str)
    return marker if ok and isinstance(marker.get("files"), list) else None


def write_marker(folder, experiment: str) -> None:
    """Mark ``folder`` as a finished ``experiment`` run, listing every file and folder in it (written last)."""
    folder = Path(folder)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    (folder / MARKER).write_text(json.dumps({"experiment": experiment, "files": files}, indent=1) + "\n")


def strays(folder) -> list[str]:
    """What in ``folder`` no run wrote: relative paths (a stray folder is named, not its contents), in order.

    A run's files are those its :data:`MARKER` lists (and the markers themselves); a main-job folder
    from before the markers existed (:data:`MAIN_JOB_MARK` alone) counts as all its own.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    marker = read_marker(folder)
    if marker is None and (folder / MAIN_JOB_MARK).is_file():
        return []
    owned = set(_OWN_NAMES) | set(marker["files"] if marker else ())
    found, todo = [], [folder]
    while todo:
        for path in sorted(todo.pop().iterdir()):
            rel = path.relative_to(folder).as_posix()
            if rel not in owned:
                found.append(rel)
            elif path.is_dir() and not path.is_symlink():
                todo.append(path)
    return sorted(found)


def _named(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def check_owner(out, experiment: str, *, force: bool = False, flag: str = "--out") -> list[str]:
    """Refuse ``out`` unless a new ``experiment`` run may replace it; returns what will be kept (``--force``).

    ``out`` may be missing, empty, or a finished ``experiment`` run holding only what that run wrote.
    Anything else -- a user's file or folder, a cache, another experiment's run -- is refused unless
    ``force``; even then it is kept beside the new run, never deleted, and a file the run writes
    (``metrics.json``, the marker) that some other run left is refused. The main job's folders
    (:data:`MAIN_JOB_MARK`) are always refused.
    """
    out = Path(out)
    if not out.is_dir() or not any(out.iterdir()):
        return []
    if (out / MAIN_JOB_MARK).exists():
        raise UsageError(f"{flag} {out} is the main job's folder ({MAIN_JOB_MARK}): only python -m "
                         f"experiments.reproduce replaces it; choose another {flag}")
    marker = read_marker(out)
    if marker is not None and marker["experiment"] != experiment:
        raise UsageError(f"{flag} {out} holds a finished {marker['experiment']} run, not a {experiment} run, and "
                         f"a run never replaces another experiment's results (not even with --force); choose "
                         f"another {flag}")
    found = strays(out)
    if not found:
        return []
    it = "it" if len(found) == 1 else "them"
    if not force:
        what = "a finished run" if marker is not None else "no finished run"
        raise UsageError(f"{flag} {out} holds {_named(found)}, which no {experiment} run wrote ({what} "
                         f"otherwise), and a run never deletes what it did not write; move {it} away, choose "
                         f"another {flag}, or pass --force to keep {it} beside the new results")
    clash = [name for name in ("metrics.json", *_OWN_NAMES) if name in found]
    if clash:
        raise UsageError(f"{flag} {out} holds {_named(clash)} that no {experiment} run wrote, and the run would "
                         f"write its own there; even --force never replaces it: choose another {flag}")
    return found


def check_out(out, *, experiment: str, inputs: Iterable = (), force: bool = False, flag: str = "--out") -> Path:
    """``out`` if an ``experiment`` run can replace it: not a file, not holding the current folder or any
    of ``inputs``, its parent writable, no other run writing into it (:func:`out_lock`), and only a
    finished run of the same experiment in it (:func:`check_owner`)."""
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
    _refuse_if_locked(out, flag)
    check_owner(out, experiment, force=force, flag=flag)
    check_writable(out.parent, flag=flag, what=out)  # the temporary sibling folder goes there
    return out


# ------------------------------------------------------------------------------------ one run per folder

def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode().strip()
        if text.isdigit():
            return text
    return "unknown"


def _in_use(out: Path, flag: str, pid: str) -> UsageError:
    return UsageError(f"{flag} {out} is in use by another run (pid {pid}); wait for it to finish or choose "
                      f"another {flag}")


def _refuse_if_locked(out: Path, flag: str) -> None:
    """Refuse at once when another process holds ``out``'s lock (a probe: nothing is held after it)."""
    try:
        fd = os.open(_lock_path(out), os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise _in_use(out, flag, _holder(fd)) from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def out_lock(out, *, flag: str = "--out"):
    """Hold an exclusive OS lock (``fcntl.flock`` on ``.<out>.lock`` beside ``out``, holding our pid) for the block.

    A second process asking for the same ``out`` is refused at once with a :class:`UsageError` naming the
    holder's pid. The OS releases the lock when the process dies; the file is removed on release.
    """
    out = Path(out)
    path = _lock_path(out)
    give_up = time.monotonic() + 0.5  # a probe (:func:`check_out`) holds a lock for microseconds, never longer
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            if (pid == "unknown" or not _pid_alive(int(pid))) and time.monotonic() < give_up:
                time.sleep(0.01)
                continue
            raise _in_use(out, flag, pid) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino  # not a file its last holder removed meanwhile
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


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
    """Remove temporary siblings of ``out`` left by killed runs; finish or undo a killed swap.

    Returns what was removed or restored. Folders of runs still alive are left alone; what a
    swapped-out folder held that no run wrote is moved back into ``out``, never deleted.
    """
    out = Path(out)
    if not out.parent.is_dir():
        return []
    done = []
    for old in sorted(out.parent.glob(f".{out.name}.old-*")):  # a swap killed between its renames
        pid = _pid_of(old, "old")
        if pid is not None and _pid_alive(pid) and pid != os.getpid():
            continue
        if not out.exists():
            old.rename(out)
        else:
            _keep_strays(old, out)
            shutil.rmtree(old, ignore_errors=True)
        done.append(old)
    for tmp in sorted(out.parent.glob(f".{out.name}.tmp-*")):
        pid = _pid_of(tmp, "tmp")
        if pid is not None and _pid_alive(pid) and pid != os.getpid():
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        done.append(tmp)
    return done


def _keep_strays(old: Path, new: Path) -> None:
    """Move what ``old`` holds that no run wrote (:func:`strays`) into ``new``; a name ``new`` already
    uses gets a ``.kept-N`` suffix (nothing is ever deleted)."""
    for rel in strays(old):
        dst = new / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while dst.exists() or dst.is_symlink():
            dst, n = new / f"{rel}.kept-{n}", n + 1
        (old / rel).rename(dst)


@contextlib.contextmanager
def _no_interrupt():
    """Defer Ctrl-C (SIGINT) to the end of the block, so a swap is never cut between its renames."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(*caught[0])


def replace_folder(new: Path, final: Path) -> None:
    """Put folder ``new`` at ``final`` (two renames; see :func:`clean_stale`); what ``final`` held that no run
    wrote (:func:`strays`) is moved into the new folder, never deleted."""
    new, final = Path(new), Path(final)
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    with _no_interrupt():
        if final.exists():
            final.rename(old)
        new.rename(final)
        if old.exists():
            _keep_strays(old, final)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(out, experiment: str, *, force: bool = False, flag: str = "--out"):
    """Yield a fresh temporary sibling folder of ``out``; it replaces ``out`` only if the block completes.

    The block runs under ``out``'s lock (:func:`out_lock`), after :func:`check_owner` again. On
    completion the folder is marked as a finished ``experiment`` run (:data:`MARKER`, listing its
    files) and swapped in; what ``out`` held that no run wrote (kept by ``--force``) stays.
    Any error, Ctrl-C or kill leaves ``out`` as it was; the temporary folder is removed on an error
    and by :func:`clean_stale` at the next start after a kill. The folder gets the user's umask.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out_lock(out, flag=flag):
        clean_stale(out)
        check_owner(out, experiment, force=force, flag=flag)  # under the lock: what appeared since check_out
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            yield tmp
            write_marker(tmp, experiment)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_folder(tmp, out)
