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
import functools
import os
import sys
import threading

import torch

from .compiling import eager, eager_frame

__all__ = ["flush_denormals", "denormals_flushed", "scoped_flush"]

_lock = threading.Lock()
_OMP_NAMES = ("libgomp", "libiomp", "libomp")


def denormals_flushed() -> bool:
    """Whether the calling thread flushes subnormals to zero now (probed: a subnormal float32
    times 1 is 0 exactly when subnormal inputs or results are flushed)."""
    # on the CPU whatever torch.set_default_device says: the mode is this CPU thread's
    tiny = torch.tensor([1e-40], dtype=torch.float64, device="cpu").to(torch.float32)  # subnormal, unless flushed
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


_runtimes_seen: tuple[int, list[str]] = (-1, [])


def _openmp_runtimes() -> list[str]:
    """`_loaded_openmp_runtimes()`, read again only after a Python module was imported: reading
    /proc/self/maps costs about a millisecond, and HAT's default flushing sets the mode four
    times a train step (twice around the forward, twice around its backward), a good part of a
    small network's step. A native library (an OpenMP runtime among them) is loaded by an import
    in practice: torch's own runtime is there from the first call, and inductor's compiled
    kernels use the same library on Linux."""
    global _runtimes_seen
    modules = len(sys.modules)
    if _runtimes_seen[0] != modules:
        _runtimes_seen = (modules, _loaded_openmp_runtimes())
    return _runtimes_seen[1]


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
        for path in _openmp_runtimes():
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


# -- the masked backbones' own scope ---------------------------------------------------------------
# HAT on specc's bases flushes by default, only while its own work runs: from the start of its
# forward to its end, and from the moment a backward pass reaches a tensor that forward returned
# to the end of that backward pass. The caller's state is restored in between. On CPU only (a GPU
# pays nothing for subnormals, and its CUDA kernels do not read this thread's control register).
#
# The backward pass of CPU tensors runs on the thread that calls backward(), with that thread's
# intra-op team: the hook that turns flushing on runs there, and the callback that restores the
# state runs there when the pass ends (the autograd engine's final callbacks, as DDP uses them).
# Several forwards in one backward pass (a network called twice, AmnesiacHAT's backups) turn it
# on once per pass: the passes are told apart by the engine's graph-task id.

_scope = threading.local()
# The autograd engine's id of the backward pass running on this thread (-1: none).
_graph_task_id = getattr(torch._C, "_current_graph_task_id", lambda: 0)


def _scope_state():
    if not hasattr(_scope, "depth"):
        _scope.depth = 0          # forwards in progress on this thread (nested: AmnesiacHAT -> HAT)
        _scope.previous = False   # the caller's state before the outermost of them
        _scope.passes = {}        # backward pass (graph-task id) -> the state before it flushed
    return _scope


@functools.cache
def _flush_supported() -> bool:
    """Whether this CPU can flush (torch.set_flush_denormal(True) returns False where it cannot:
    x86 without DAZ, some other architectures); the calling thread's mode is left as it was."""
    with _lock:
        previous = denormals_flushed()
        supported = torch.set_flush_denormal(True)
        torch.set_flush_denormal(previous)
        return bool(supported)


@eager
def _scope_wanted(network, input) -> bool:
    # Where the CPU cannot flush, the default scope does nothing (an explicit flush_denormals(True)
    # still raises): the network computes as without it.
    return getattr(network, "flush_subnormals", False) and isinstance(input, torch.Tensor) \
        and input.device.type == "cpu" and _flush_supported()


@eager
def _enter_forward() -> None:
    s = _scope_state()
    if s.passes and _graph_task_id() == -1:
        # A backward pass that raised never ran its final callback: restore what it found.
        _set(next(iter(s.passes.values())))
        s.passes.clear()
    if s.depth == 0:
        s.previous = _set(True)
    s.depth += 1


@eager
def _leave_forward(outputs) -> None:
    s = _scope_state()
    s.depth -= 1
    if s.depth:
        return  # the outer forward restores, and hooks what it returns
    _set(s.previous)
    for t in _tensors(outputs):
        if t.requires_grad:
            t.register_hook(_backward_reached)


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def _backward_reached(grad):
    s = _scope_state()
    task = _graph_task_id()
    if task not in s.passes:
        s.passes[task] = _set(True)
        torch.autograd.Variable._execution_engine.queue_callback(functools.partial(_backward_done, task))
    return None  # the gradient is unchanged


def _backward_done(task: int) -> None:
    s = _scope_state()
    if task in s.passes:
        _set(s.passes.pop(task))


def scoped_flush(forward):
    """Decorate a masked backbone's (eager-frame) `forward`: when the network's `flush_subnormals`
    is true and the input is on the CPU, subnormals are flushed to zero (FTZ and DAZ, as
    `flush_denormals`) during the forward and during the part of each backward pass that starts
    at the tensors it returned; the caller's state everywhere else."""

    @functools.wraps(forward)
    def scoped(self, input, *args, **kwargs):
        if not _scope_wanted(self, input):
            return forward(self, input, *args, **kwargs)
        _enter_forward()
        outputs = None
        try:
            outputs = forward(self, input, *args, **kwargs)
            return outputs
        finally:
            _leave_forward(outputs)

    return eager_frame(scoped)
