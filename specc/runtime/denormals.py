"""Flush-to-zero / denormals-are-zero on every thread torch computes on.

HAT's mask is `sigmoid(s * e)` with `s` annealed up to `s_max` (400 in CLArena's configs): once `s`
is large, many mask values, and the products that flow from them through the forward and the
backward, are subnormal floats, which x86 CPUs process tens of times slower than normal ones.
Flushing them to zero (FTZ: subnormal results become 0; DAZ: subnormal inputs are read as 0)
removes that cost.

`torch.set_flush_denormal(True)` sets the floating-point control register of the calling thread
only. torch's intra-op workers (an OpenMP team) are threads of their own: those that exist keep
their setting, and only threads created later inherit the caller's. `flush_denormals` also
sets it on the workers that exist: it runs one OpenMP parallel region on every OpenMP runtime
loaded in the process (torch's, and the one inductor's compiled kernels use, which on Linux is
the same library), whose body is the C library's `fesetenv` with the caller's environment. No
Python code runs on the workers.

The setting belongs to the calling thread and to the intra-op team that thread drives (OpenMP
keeps one team per thread that starts parallel regions): call it in the thread that trains.

Numerical meaning: subnormal numbers (magnitude below 2**-126 ~ 1.2e-38 in float32) become 0 where
they are produced or read. Results can differ from a run without it (and from CLArena's) in the
last bits, and only where subnormals occur; elsewhere they are bit for bit the same. Default: off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

import torch

__all__ = ["flush_denormals", "denormals_flushed"]

_lock = threading.Lock()
_OMP_NAMES = ("libgomp", "libiomp", "libomp")


def denormals_flushed() -> bool:
    """Whether the calling thread flushes subnormals to zero now (probed: a subnormal float32
    times 1 is 0 exactly when subnormal inputs or results are flushed)."""
    tiny = torch.tensor([1e-40], dtype=torch.float64).to(torch.float32)  # a subnormal, unless flushed
    return bool((tiny * 1.0).item() == 0.0)


def _loaded_openmp_runtimes() -> list[str]:
    """Paths of the OpenMP runtimes mapped into this process (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    paths: list[str] = []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6:
            continue
        path = parts[5].strip()
        name = os.path.basename(path)
        if name.startswith(_OMP_NAMES) and ".so" in name and path not in paths:
            paths.append(path)
    return paths


class _Broadcast:
    """`fesetenv(env)` on every thread of each loaded OpenMP runtime's team (libgomp's
    GOMP_parallel(fn, data, num_threads, flags) runs fn(data) on the caller and its team)."""

    def __init__(self) -> None:
        self.libm = None
        self.runtimes: dict[str, object] = {}
        libm_name = ctypes.util.find_library("m")
        if libm_name is None or not sys.platform.startswith("linux"):
            return
        try:
            self.libm = ctypes.CDLL(libm_name)
            self.fesetenv = ctypes.cast(self.libm.fesetenv, ctypes.c_void_p).value
        except (OSError, AttributeError):
            self.libm = None

    def _runtime(self, path: str):
        if path not in self.runtimes:
            try:
                lib = ctypes.CDLL(path)  # already loaded: the same handle
                fn = lib.GOMP_parallel
                fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
                fn.restype = None
            except (OSError, AttributeError):
                fn = None
            self.runtimes[path] = fn
        return self.runtimes[path]

    def __call__(self, threads: int) -> int:
        """Copy the calling thread's floating-point environment to the teams; returns how many
        runtimes were reached."""
        if self.libm is None:
            return 0
        env = ctypes.create_string_buffer(256)  # fenv_t is 32 bytes on x86-64, 8 on aarch64
        if self.libm.fegetenv(env) != 0:
            return 0
        reached = 0
        for path in _loaded_openmp_runtimes():
            parallel = self._runtime(path)
            if parallel is not None:
                parallel(self.fesetenv, ctypes.cast(env, ctypes.c_void_p), max(1, threads), 0)
                reached += 1
        return reached


_broadcast: _Broadcast | None = None


def _set(enabled: bool) -> bool:
    """Set the mode on this thread and its intra-op team; returns the previous mode of this thread."""
    global _broadcast
    with _lock:
        previous = denormals_flushed()
        if not torch.set_flush_denormal(bool(enabled)) and enabled:
            raise RuntimeError("flush_denormals: this CPU cannot flush subnormals to zero "
                               "(torch.set_flush_denormal(True) returned False)")
        if _broadcast is None:
            _broadcast = _Broadcast()
        _broadcast(torch.get_num_threads())
        return previous


class flush_denormals:
    """`specc.flush_denormals(enabled=True)`: flush subnormal floats to zero (FTZ and DAZ) on the
    calling thread and on torch's intra-op worker threads, whenever it is called (threads created
    later inherit the setting). Returns the previous state of the calling thread: the returned
    object is truthy exactly when subnormals were flushed before (`.previous` holds the bool), so
    `old = flush_denormals(True); ...; flush_denormals(old)` restores it. As a context manager
    the state before the call comes back on exit::

        with specc.flush_denormals():
            train()                       # subnormals are flushed here
        # ... and not here (unless they were before)

    Off by default; on, results can differ in the last bits where subnormals occur (they become 0).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)
        self.previous = _set(self.enabled)

    def __bool__(self) -> bool:
        return self.previous

    def __enter__(self) -> flush_denormals:
        return self

    def __exit__(self, *exc) -> None:
        _set(self.previous)

    def __repr__(self) -> str:
        return f"flush_denormals(enabled={self.enabled}, previous={self.previous})"
