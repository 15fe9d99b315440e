"""``python -m explore SPEC.toml``: sweep candidate engines and draw their Pareto fronts."""

import shlex
import sys
import time

from hw.config import OneLineErrorParser

from .report import write_outputs
from .spec import SpecError, load_spec
from .sweep import default_cache_dir, run_sweep

__all__ = ["main"]

DESCRIPTION = """\
Evaluate every candidate engine of SPEC (a TOML file: [[engine]] grids, [[workload]]s,
[target], bandwidth, dram_bytes_per_cycle) on every workload: area and post-route Fmax
(hw.synth's place and route, cached), cycles and off-chip bytes per inference (the layer
scheduler sim.schedule and the cycle model, as sim.perf), accuracy (the study's
records at the engine's PE mode and bit widths), and the derived inferences/s, GOPS, GOPS
per kLUT and per DSP. Writes points.csv, points.json, PNG and SVG figures with the Pareto
fronts, and report.md into --out. Results are cached per engine and per point: rerunning an
interrupted sweep resumes it. A point that does not fit or whose tools fail is recorded
with its reason."""


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(text)
    return value


def main(argv=None):
    parser = OneLineErrorParser(prog="python -m explore", description=DESCRIPTION)
    parser.add_argument("spec", help="the sweep's TOML file")
    parser.add_argument("--out", default=None,
                        help="output folder (default: explore-NAME, NAME the spec's name)")
    parser.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                        help="local worker processes (default: the CPUs, at most the engines)")
    parser.add_argument("--dask", metavar="tcp://HOST:PORT", default=None,
                        help="run the engines on this Dask scheduler's workers instead")
    parser.add_argument("--cache", default=None,
                        help=f"result cache (default {default_cache_dir()})")
    parser.add_argument("--fresh", action="store_true",
                        help="recompute every point even if it is cached")
    parser.add_argument("--report-only", action="store_true",
                        help="compute nothing: write the outputs from what the cache holds "
                             "(points not computed yet say 'not run')")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec)
    except SpecError as e:
        parser.error(str(e))
    out = args.out or f"explore-{spec.name}"
    start = time.monotonic()
    points = run_sweep(spec, cache=args.cache, jobs=args.jobs, dask=args.dask,
                       progress=not args.no_progress, fresh=args.fresh,
                       compute=not args.report_only)
    seconds = time.monotonic() - start
    argv = sys.argv[1:] if argv is None else argv
    meta = {"spec_name": spec.name, "command": "python -m explore " + shlex.join(argv),
            "engines": len(spec.engines), "workloads": len(spec.workloads),
            "target": spec.target.to_dict(), "bandwidth": spec.bandwidth,
            "dram": list(spec.dram) if spec.dram else None, "seconds": round(seconds, 1)}
    files = write_outputs(points, out, meta)
    ok = sum(p["status"] == "ok" for p in points)
    print(f"{len(points)} points ({ok} complete, {len(points) - ok} with a reason) in "
          f"{seconds:.0f} s; wrote {files['csv']}, {files['json']}, "
          f"{len(files['figures'])} figures and {files['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
