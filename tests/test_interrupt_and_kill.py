"""Ctrl-C and kills, from outside, at many moments of a `specc compile` (issue 23).

The command (`python -m specc`, the console script's module) installs its SIGINT handling before
it imports the compiler or torch: a Ctrl-C at any moment after Python's own start-up ends it with
`specc: interrupted`, exit status 130 and nothing written (or, when the outputs were already in
place, exit status 0 and the outputs). A SIGKILL, which runs no clean-up, leaves no temporary file
where the system has unnamed files (O_TMPFILE): the outputs are written without a name and linked
in at the end. specc/output.py's other paths are tested directly at the end of this file."""
from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, SPECS, unnamed_files

import specc.output as output
from specc.output import OutputError, write_all

SPECC = [sys.executable, "-m", "specc"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def start(args: list, pause: str) -> subprocess.Popen:
    """`specc ARGS` with SPECC_TEST_PAUSE=pause, returned once it says it reached that point."""
    proc = subprocess.Popen(SPECC + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**ENV, "SPECC_TEST_PAUSE": pause})
    line = proc.stderr.readline()
    if line != f"specc: test pause at {pause}\n":
        proc.kill()
        pytest.fail(f"specc did not reach {pause}: {line!r} {proc.communicate()}")
    return proc


# From the moment the handler is in place: during the imports of the CLI, lark and torch (the
# issue's case was 0.15 s), parsing, elaboration and the prepared section's tracing.
DELAYS = [0, 0.005, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5]


def test_ctrl_c_at_any_moment_of_a_compile(tmp_path):
    seen = {}
    for i, delay in enumerate(DELAYS):
        out = tmp_path / f"out{i}"
        proc = start(["compile", SPECS / "resnet152_hat.cl", "-o", f"{out}/"], "start")
        try:
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
        seen[delay] = proc.returncode
        assert "Traceback" not in stderr, (delay, stderr)
        if proc.returncode == 0:  # done before the signal came: the output, whole, and nothing else
            assert os.listdir(out) == ["resnet152_hat.py"], delay
        else:
            assert (proc.returncode, stderr, stdout) == (130, "specc: interrupted\n", ""), delay
            assert not out.exists(), (delay, os.listdir(out))
    assert 130 in seen.values(), seen


def test_ctrl_c_before_the_cli_is_imported_and_after_it_is_done(tmp_path):
    # Before main(): the handler itself says it and leaves (nothing can have been written).
    code = "import os, signal, time, specc.__main__; os.kill(os.getpid(), signal.SIGINT); time.sleep(30)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert (done.returncode, done.stderr) == (130, "specc: interrupted\n")
    # After main() returned: the command is done, its exit status stands; a compile keeps SIGINT
    # blocked once its outputs are in place.
    target = tmp_path / "x.py"
    for argv, pending in ((["check", str(SPECS / "mlp.cl")], False),
                          (["compile", str(SPECS / "mlp.cl"), "-o", str(target)], True)):
        code = ("import os, signal, sys, specc.__main__ as m; sys.argv = ['specc', *sys.argv[1:]]; rc = m.main(); "
                "os.kill(os.getpid(), signal.SIGINT); print('after', rc, signal.SIGINT in signal.sigpending()); "
                "sys.exit(rc)")
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=ENV,
                              timeout=120)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        assert done.stdout.splitlines()[-1] == f"after 0 {pending}"
    assert target.is_file()


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_sigkill_with_every_output_written_leaves_no_temporary_file(tmp_path, existing):
    if not unnamed_files(tmp_path):
        pytest.skip("no unnamed files (O_TMPFILE) here: a kill can leave a temporary file")
    out = tmp_path / "out"
    out.mkdir()
    if existing:
        for name in ("mlp.py", "cl_mlp.py"):
            (out / name).write_text("old\n")
    for pause in ("write", "rename"):  # all written, unnamed; then with SIGINT held, before the naming
        proc = start(["compile", SPECS / "mlp.cl", SPECS / "cl_mlp.cl", "-o", f"{out}/"], pause)
        proc.kill()
        proc.communicate(timeout=60)
        assert _listing(out) == (["cl_mlp.py", "mlp.py"] if existing else []), pause
        if existing:
            assert {(out / n).read_text() for n in _listing(out)} == {"old\n"}


def test_sigkill_at_random_moments_leaves_whole_files_only(tmp_path):
    if not unnamed_files(tmp_path):
        pytest.skip("no unnamed files (O_TMPFILE) here: a kill can leave a temporary file")
    specs = [SPECS / "mlp.cl", SPECS / "cl_mlp.cl"]
    ref = tmp_path / "ref"
    assert subprocess.run(SPECC + ["compile", *map(str, specs), "-o", f"{ref}/"], env=ENV, capture_output=True,
                          timeout=120).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    for name in ("mlp.py", "cl_mlp.py"):
        (out / name).write_text("old\n")
    outcomes = set()
    for delay in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5):
        proc = start(["compile", *specs, "-o", f"{out}/"], "start")
        time.sleep(delay)
        proc.kill()
        proc.communicate(timeout=60)
        assert _listing(out) == ["cl_mlp.py", "mlp.py"], (delay, _listing(out))
        for name in ("mlp.py", "cl_mlp.py"):
            text = (out / name).read_text()
            assert text in ("old\n", (ref / name).read_text()), (delay, name)
            outcomes.add(text == "old\n")
    assert True in outcomes  # some kills came before the naming (the others after it)


# ---------------------------------------------------------------------------------------------
# specc/output.py directly: each way of writing gives the same files, modes and clean-up
# ---------------------------------------------------------------------------------------------

@pytest.fixture(params=["unnamed", "no O_TMPFILE", "O_TMPFILE refused", "link refused"])
def way(request, monkeypatch, tmp_path):
    """The writer's paths: unnamed files linked in; none at all (another system); a file system
    without them (open fails with EOPNOTSUPP); unnamed files that cannot be linked (EXDEV)."""
    if request.param == "unnamed" and not unnamed_files(tmp_path):
        pytest.skip("no unnamed files (O_TMPFILE) here")
    if request.param == "no O_TMPFILE":
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    elif request.param == "O_TMPFILE refused":
        real_open = os.open
        flag = getattr(os, "O_TMPFILE", 0)

        def refusing(path, flags, *a, **k):
            if flag and flags & flag == flag:
                raise OSError(errno.EOPNOTSUPP, "Operation not supported")
            return real_open(path, flags, *a, **k)

        monkeypatch.setattr(os, "open", refusing)
    elif request.param == "link refused":
        if not unnamed_files(tmp_path):
            pytest.skip("no unnamed files (O_TMPFILE) here")

        def exdev(fd, dest):
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(output, "_link", exdev)
    return request.param


def test_writer_new_and_replaced_files_with_their_modes(tmp_path, way):
    old_umask = os.umask(0o027)
    try:
        kept = tmp_path / "kept.py"
        kept.write_text("old")
        kept.chmod(0o604)
        new = tmp_path / "sub" / "dir" / "new.py"
        write_all([(kept, b"one"), (new, b"two" * 100000)])
    finally:
        os.umask(old_umask)
    assert (kept.read_bytes(), new.read_bytes()) == (b"one", b"two" * 100000)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and stat.S_IMODE(new.stat().st_mode) == 0o640
    assert _listing(tmp_path) == ["kept.py", "sub"] and _listing(new.parent) == ["new.py"]


def test_writer_failure_while_naming_removes_what_it_made(tmp_path, way, monkeypatch):
    real = output._give_name
    calls = []

    def second_fails(p):
        calls.append(p.target)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(p)

    monkeypatch.setattr(output, "_give_name", second_fails)
    first, second = tmp_path / "a" / "first.py", tmp_path / "a" / "second.py"
    with pytest.raises(OutputError, match="second.py: No space left"):
        write_all([(first, b"1"), (second, b"2")])
    assert _listing(tmp_path) == []  # the new first file and the folder made for both are gone


def test_writer_reports_a_folder_it_cannot_write(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(OutputError, match="ro/x.py"):
        write_all([(tmp_path / "ro" / "x.py", b"x")])


def test_writer_keeps_sigint_blocked_after_success_only_when_asked(tmp_path):
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    try:
        write_all([(tmp_path / "a.py", b"a")])
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
        write_all([(tmp_path / "b.py", b"b")], stay_held=True)
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
