"""Benchmark of the golden ``gemm`` against numpy's int32 and float32 matmul, same run."""

import argparse
import json
import os
import platform
import sys
import time
from functools import partial

import numpy as np

from .gemm import gemm

__all__ = ["main", "run"]


def _best_time(fn, repeat):
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(sizes=(256, 512, 1024), repeat=5, seed=0, zero_point=-128, progress=None):
    """Time int8 GEMMs of ``n^3`` for each ``n`` in ``sizes``; return one record per size.

    Each record holds the best of ``repeat`` wall-clock times, in seconds, of the golden
    :func:`golden.gemm.gemm` (with an activation zero point, as in a real int8 layer),
    numpy's int32 matmul of the same centred operands (no BLAS) and numpy's float32
    matmul (BLAS), plus whether the golden result equals the int32 matmul exactly.
    """
    rng = np.random.default_rng(seed)
    records = []
    for n in sizes:
        a = rng.integers(-128, 128, (n, n), dtype=np.int8)
        w = rng.integers(-128, 128, (n, n), dtype=np.int8)
        a32 = a.astype(np.int32) - zero_point
        w32 = w.astype(np.int32)
        a_f = a32.astype(np.float32)
        w_f = w32.astype(np.float32)
        # numpy's int32 matmul takes seconds at n = 1024: time it fewer times there.
        int32_repeat = min(repeat, 2) if n >= 1024 else repeat
        t_golden, out = _best_time(partial(gemm, a, w, a_zero_point=zero_point), repeat)
        t_int32, ref = _best_time(partial(np.matmul, a32, w32), int32_repeat)
        t_f32, _ = _best_time(partial(np.matmul, a_f, w_f), repeat)
        record = {
            "n": n, "macs": n ** 3,
            "golden_gemm_s": t_golden, "numpy_int32_matmul_s": t_int32,
            "numpy_float32_matmul_s": t_f32,
            "speedup_vs_int32": t_int32 / t_golden, "slowdown_vs_float32": t_golden / t_f32,
            "exact": bool(np.array_equal(out, ref)),
        }
        records.append(record)
        if progress:
            progress(record)
    return records


def _print_record(r):
    print(f"{r['n']:>6} {r['golden_gemm_s'] * 1e3:>12.2f} {r['numpy_int32_matmul_s'] * 1e3:>12.2f} "
          f"{r['numpy_float32_matmul_s'] * 1e3:>12.2f} {r['speedup_vs_int32']:>11.1f}x "
          f"{r['slowdown_vs_float32']:>11.2f}x {'yes' if r['exact'] else 'NO':>6}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m golden.bench",
        description="Time the golden int8 GEMM (exact, int32 accumulation) against numpy's "
                    "int32 matmul and float32 matmul on the same machine, in the same run. "
                    "Times are the best of --repeat runs, in milliseconds.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], metavar="N",
                        help="GEMM sizes: M = K = N (default: 256 512 1024)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the operands (default: 0)")
    parser.add_argument("--json", metavar="FILE", help="also write the records as JSON")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.sizes):
        parser.error(f"--sizes must be positive, not {args.sizes}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}")
    machine = platform.processor() or platform.machine()
    print(f"golden.gemm benchmark: int8 operands, activation zero point -128, seed {args.seed}, "
          f"numpy {np.__version__}, {os.cpu_count()} CPUs, {machine}")
    print(f"{'n':>6} {'golden ms':>12} {'int32 ms':>12} {'float32 ms':>12} "
          f"{'vs int32':>12} {'vs float32':>12} {'exact':>6}")
    records = run(args.sizes, args.repeat, args.seed, progress=_print_record)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)
    return 0 if all(r["exact"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
