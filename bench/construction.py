"""Construction of HATMaskResNet152: specc's generated class against CLArena's hand-written one
(when ../shared/clarena is importable), and what importing a generated module adds to `import torch`.

specc's constructor traces the plain forward, analyses it and compiles the masked forward; that
is done once per structure (class and arguments) and shared, so the first construction in a
process pays it and later ones do not, and generated/resnet152_hat.py carries it for the structure
its spec prepares (`prepare(input_channels=3, ...)`: made by `specc compile`), so a first
construction of that structure does not either. All three are measured, interleaved with
CLArena's constructor (whose cost is mostly the random initialisation of the same weights).

Run from the repository root: python bench/construction.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent),
                str(Path(__file__).resolve().parent.parent / "tests")]
from _timing import PY, interleaved, report  # noqa: E402

torch.set_num_threads(1)
KW = dict(input_channels=3, output_dim=2048, gate="sigmoid")


def main() -> None:
    import generated.resnet152_hat as G
    from specc.runtime import codegen, structure

    def specc_first(prepared: bool):
        def case():
            structure._memo.clear()
            kept = structure._prepared
            if not prepared:
                structure._prepared = {}
                codegen._cache.clear()  # and compile the forward's code again too
            try:
                t = time.perf_counter()
                G.HATMaskResNet152(**KW)
                return time.perf_counter() - t
            finally:
                structure._prepared = kept
        return case

    def specc_again():
        t = time.perf_counter()
        G.HATMaskResNet152(**KW)
        return time.perf_counter() - t

    cases = {"specc HATMaskResNet152 (first, prepared structure)": specc_first(True),
             "specc HATMaskResNet152 (first, structure traced)": specc_first(False),
             "specc HATMaskResNet152 (structure known)": specc_again}
    try:
        from clarena_client.loader import import_clarena

        clarena = import_clarena().backbones

        def clarena_case():
            t = time.perf_counter()
            clarena.HATMaskResNet152(**KW)
            return time.perf_counter() - t

        cases = {"CLArena HATMaskResNet152": clarena_case, **cases}
        baseline = "CLArena HATMaskResNet152"
    except Exception as e:  # noqa: BLE001 - the benchmark still runs without CLArena
        print(f"(CLArena not importable: {e}; ratios are to specc's repeated construction)")
        baseline = "specc HATMaskResNet152 (structure known)"
    specc_again()  # the structure is known from here on (specc_first forgets it itself)
    times = interleaved(cases, repeats=41, settle=True)
    report("construction, 1 thread", times, baseline)
    # The fastest round of each case: noise (other tenants of the machine) only ever adds time.
    print("  fastest round, ratio to the baseline's: " + ", ".join(
        f"{name} {min(ts) / min(times[baseline]):.2f}" for name, ts in times.items() if name != baseline))

    # What the import of the generated module takes after `import torch`, as Python's own import
    # timer reports it (in a fresh process each time; the difference of two whole-process timings
    # drowns in the noise of importing torch): with bytecode cached, as an installed package or a
    # second import is, and without (PYTHONDONTWRITEBYTECODE: compiling the file included).
    import os
    import shutil
    import statistics
    import subprocess
    import tempfile

    def import_ms(module: str, env: dict) -> float:
        done = subprocess.run([PY, "-X", "importtime", "-c", f"import sys; sys.path.insert(0, '.'); import torch, {module}"],
                              capture_output=True, text=True, check=True, env=env)
        line = next(x for x in done.stderr.splitlines() if x.rstrip().endswith(f"| {module}"))
        return int(line.split("|")[1]) / 1000

    cache = tempfile.mkdtemp()
    try:
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        modes = {"bytecode cached": {**base, "PYTHONPYCACHEPREFIX": cache},
                 "no bytecode cache": {**base, "PYTHONDONTWRITEBYTECODE": "1"}}
        print("import after `import torch` (python -X importtime, median of 9 processes; goal < 100 ms)")
        for mode, env in modes.items():
            for module in ("generated.resnet152", "generated.resnet152_hat"):
                import_ms(module, env)  # writes the bytecode (cached mode)
                times = [import_ms(module, env) for _ in range(9)]
                print(f"  {module:<26} {mode:<18} {statistics.median(times):7.1f} ms")
    finally:
        shutil.rmtree(cache)

if __name__ == "__main__":
    main()
