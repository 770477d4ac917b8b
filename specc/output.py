"""Writing the CLI's outputs: every file or none, and no temporary file left behind.

Each output is first written in full to a file with no name: on Linux an O_TMPFILE file in the
target's folder, which a kill (even SIGKILL) makes vanish with the process. Only when every output
is written are they given their names, with Ctrl-C held back: a new target is linked in directly
(linkat through /proc/self/fd: atomic, and nothing is left on a kill); an existing target cannot be
replaced by a link, so the file is linked to a hidden temporary name and renamed over the target,
and a SIGKILL between those two system calls is the one moment that can leave `.NAME.XXXX.tmp`
behind. Where there is no O_TMPFILE (another system; a file system without it), each output goes
to such a named temporary file from the start and is renamed the same way, as before."""
from __future__ import annotations

import errno
import os
import signal
import stat
import sys
import time
from pathlib import Path

from .frontend.errors import display_path


class OutputError(Exception):
    """An output that cannot be written (exit status 1). The message names the user's path."""


# What open(O_TMPFILE) fails with where the kernel (EISDIR: it reads the flag as O_DIRECTORY) or the
# file system (EOPNOTSUPP) has no unnamed files; any other error is the folder's own (no permission,
# full disk) and is reported.
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS}


class _Pending:
    """One written output waiting for its name: an open unnamed file (`fd`) or a named temporary
    file (`tmp`)."""

    def __init__(self, target: Path, fd: int | None = None, tmp: str | None = None):
        self.target, self.fd, self.tmp = target, fd, tmp
        self.existed = os.path.lexists(target)
        self.named = False  # the file is in place as the target

    def discard(self) -> None:
        if self.fd is not None:
            _close(self.fd)
            self.fd = None
        if self.tmp is not None:
            _unlink(self.tmp)
            self.tmp = None


def write_all(files: list[tuple[Path, bytes]], *, stay_held: bool = False) -> None:
    """Write every file or none (see the module's doc). A target keeps its mode; a new one gets
    0o666 minus the umask, like any file the user creates. On any failure or interrupt every
    temporary file, every new target this call created and the folders made for them are removed;
    errors name the target, never a temporary file (a target replaced before a later one failed
    stays replaced). `stay_held`: SIGINT stays blocked once all are written (the `specc` command:
    it is done, and a late Ctrl-C must not say otherwise)."""
    made_dirs: list[Path] = []
    pending: list[_Pending] = []
    try:
        for target, data in files:
            try:
                made_dirs += _make_parents(target.parent)
                pending.append(_write_unnamed(target, data, _mode_for(target)))
            except OSError as e:
                raise OutputError(f"cannot write {display_path(target)}: {e.strerror or e}") from None
        _test_pause("write")
        with _interrupts_held(stay_held):
            _test_pause("rename", 3)
            for p in pending:
                try:
                    _give_name(p)
                    p.named = True
                except OSError as e:
                    raise OutputError(f"cannot write {display_path(p.target)}: {e.strerror or e}") from None
    except BaseException:
        for p in pending:
            p.discard()
            if p.named and not p.existed:  # made by this call: all or nothing
                _unlink(p.target)
        for d in reversed(made_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        raise
    for p in pending:
        p.discard()


def _write_unnamed(target: Path, data: bytes, mode: int) -> _Pending:
    """`data` in an unnamed file in the target's folder, else in a named temporary file there."""
    fd = anonymous_file(target.parent)
    pending = _Pending(target, fd=fd) if fd is not None else _Pending(target, *_named_temp(target))
    fd = pending.fd
    assert fd is not None
    try:
        _write_fd(fd, data)
        os.fchmod(fd, mode)  # exactly `mode`: open() would apply the umask to it
    except BaseException:
        pending.discard()
        raise
    if pending.tmp is not None:  # a named file is renamed, not linked: its descriptor is done
        _close(fd)
        pending.fd = None
    return pending


def anonymous_file(folder: Path) -> int | None:
    """An open, writable file without a name in `folder` (O_TMPFILE), or None where the system or
    the file system has none (or /proc, through which it is linked, is not mounted)."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return None
    try:
        fd = os.open(folder, flag | os.O_WRONLY, 0o600)
    except OSError as e:
        if e.errno in _NO_TMPFILE:
            return None
        raise
    if not os.path.exists(_proc_path(fd)):
        _close(fd)
        return None
    return fd


def _named_temp(target: Path) -> tuple[int, str]:
    """(fd, path) of a new hidden file next to `target`, for systems without unnamed files."""
    while True:
        tmp = _temp_name(target)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), tmp
        except FileExistsError:
            continue


def _temp_name(target: Path) -> str:
    return str(target.parent / f".{target.name[:64]}.{os.urandom(4).hex()}.tmp")


def _give_name(p: _Pending) -> None:
    """Put p's file in place as its target: linked when new, renamed over an existing one."""
    if p.fd is not None:
        try:
            _link(p.fd, p.target)
            _close(p.fd)
            p.fd = None
            return
        except FileExistsError:
            pass
        except OSError as e:
            if e.errno not in _NO_LINK:
                raise
            _rewrite_named(p)  # unnamed files this system will not link: the named way after all
        while p.tmp is None and p.fd is not None:  # it exists: link to a temporary name, rename over
            tmp = _temp_name(p.target)
            try:
                _link(p.fd, tmp)
                p.tmp = tmp
            except FileExistsError:
                continue
    assert p.tmp is not None
    os.replace(p.tmp, p.target)
    p.tmp = None


# What linkat through /proc fails with where unnamed files cannot be linked (no /proc, a sandbox,
# a file system that refuses): the output is then written under a temporary name after all.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOENT, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS}


def _link(fd: int, dest: str | Path) -> None:
    """Give the unnamed file open as `fd` the name `dest`: linkat("/proc/self/fd/N", dest,
    AT_SYMLINK_FOLLOW). The directory descriptor matters: without one CPython calls link(2), which
    does not follow the /proc symbolic link and fails with EXDEV."""
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(fd), dest, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def _rewrite_named(p: _Pending) -> None:
    """Copy p's unnamed file to a named temporary file next to its target and use that instead."""
    assert p.fd is not None
    fd, tmp = _named_temp(p.target)
    p.tmp = tmp
    try:
        os.fchmod(fd, stat.S_IMODE(os.fstat(p.fd).st_mode))
        with open(_proc_path(p.fd), "rb") as src:
            _write_fd(fd, src.read())
    finally:
        _close(fd)
    _close(p.fd)
    p.fd = None


def _proc_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; returns those created, outermost first."""
    missing = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    made = []
    for d in reversed(missing):
        d.mkdir()
        made.append(d)
    return made


def _mode_for(target: Path) -> int:
    try:
        st = os.stat(target)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


class _interrupts_held:
    """Hold SIGINT back while the outputs get their names, so that Ctrl-C cannot leave some
    outputs replaced and others not. A Ctrl-C that came meanwhile is dropped when they all
    succeeded (the command is done: every output is written), and delivered when one failed.
    With `stay` it stays blocked after success, for the rest of the process."""

    def __init__(self, stay: bool = False):
        self.stay = stay

    def __enter__(self):
        self.old = None
        if hasattr(signal, "pthread_sigmask"):
            self.old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def __exit__(self, exc_type, *exc):
        if self.old is None:
            return False
        if exc_type is None and signal.SIGINT not in self.old and signal.SIGINT in signal.sigpending():
            signal.sigwait({signal.SIGINT})  # consumed while still blocked: never delivered
        if exc_type is not None or not self.stay:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)
        return False


def _test_pause(stage: str, seconds: float = 60) -> None:
    """A hook for the test suite: with SPECC_TEST_PAUSE=STAGE, say so on stderr and wait at that
    stage (`seconds` at most), so that a test can send a signal at a known point: "write" (every
    output written to its unnamed or temporary file, before the naming) or "rename" (with SIGINT
    held back)."""
    if os.environ.get("SPECC_TEST_PAUSE") == stage:
        if sys.stderr is not None:
            print(f"specc: test pause at {stage}", file=sys.stderr, flush=True)
        time.sleep(seconds)
