"""Construction of HATMaskResNet152: specc's generated class against CLArena's hand-written one
(when ../shared/clarena is importable), and what importing a generated module adds to `import torch`.

specc's constructor traces the plain forward, analyses it and compiles the masked forward; that
is done once per structure (class and arguments) and shared, so the first construction in a
process pays it and later ones do not. Both are measured, interleaved with CLArena's constructor
(whose cost is mostly the random initialisation of the same weights).

Run from the repository root: python bench/construction.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent),
                str(Path(__file__).resolve().parent.parent / "tests")]
from _timing import PY, interleaved, report, time_command  # noqa: E402

torch.set_num_threads(1)
KW = dict(input_channels=3, output_dim=2048, gate="sigmoid")


def main() -> None:
    import generated.resnet152_hat as G
    from specc.runtime import structure

    def specc_first():
        structure._memo.clear()
        t = time.perf_counter()
        G.HATMaskResNet152(**KW)
        return time.perf_counter() - t

    def specc_again():
        t = time.perf_counter()
        G.HATMaskResNet152(**KW)
        return time.perf_counter() - t

    cases = {"specc HATMaskResNet152 (first of its structure)": specc_first,
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
    specc_again()  # the structure is known from here on (specc_first clears it itself)
    report("construction, 1 thread", interleaved(cases, repeats=15), baseline)

    imports = interleaved({
        "import torch": lambda: time_command([PY, "-c", "import torch"]),
        "import torch + generated.resnet152_hat": lambda: time_command(
            [PY, "-c", "import sys; sys.path.insert(0, '.'); import torch, generated.resnet152_hat"]),
    }, repeats=7)
    import statistics

    extra = statistics.median(imports["import torch + generated.resnet152_hat"]) - statistics.median(
        imports["import torch"])
    report("import", imports, "import torch")
    print(f"  importing the generated module adds {extra * 1000:.0f} ms (goal < 100 ms)")


if __name__ == "__main__":
    main()
