"""The `specc` command's entry point (the console script, and `python -m specc`).

Ctrl-C must end the command with one line and exit status 130 at any moment, also while the
compiler and torch are still being imported (half a second). So this module, imported right after
`specc/__init__.py` (which imports nothing), installs its SIGINT handler before it imports anything else, and
imports the CLI only inside the `try` that turns KeyboardInterrupt into that line. Python's own
start-up, before this module runs, is the one window it cannot cover (README, "CLI")."""
# The C module (typeshed has no stub): `signal` imports enum, milliseconds that Ctrl-C could land in.
import _signal  # type: ignore[import-not-found]
import os
import sys

_STARTING, _RUNNING, _DONE = 0, 1, 2
_phase = _STARTING


def _on_sigint(signum, frame):
    if _phase == _RUNNING:  # the CLI's handlers remove temporary files and say "interrupted"
        raise KeyboardInterrupt
    if _phase == _STARTING:  # nothing written, nothing to clean: say it and leave now
        try:
            os.write(2, b"specc: interrupted\n")
        except OSError:
            pass
        os._exit(130)
    # _DONE: the command has finished (its outputs are in place); the interrupt is dropped.


_signal.signal(_signal.SIGINT, _on_sigint)
if os.environ.get("SPECC_TEST_PAUSE") == "start":  # the test suite times its signals from here
    os.write(2, b"specc: test pause at start\n")


def main() -> int:
    global _phase
    try:
        _phase = _RUNNING
        from .cli import main as run

        rc = run(command=True)
        _phase = _DONE
    except KeyboardInterrupt:
        _phase = _DONE
        _flush()
        try:
            os.write(2, b"specc: interrupted\n")
        except OSError:
            pass
        rc = 130
    finally:  # also when argparse ends the command (--help, --version, a usage error)
        _phase = _DONE
    if rc == 130:
        # Interrupted (the CLI has cleaned up). Left at once: a KeyboardInterrupt that went through
        # Python code run by C (as torch's import does) marks the interpreter, which then ends itself
        # by SIGINT at exit instead of with status 130.
        _flush()
        os._exit(130)
    return rc


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    sys.exit(main())
