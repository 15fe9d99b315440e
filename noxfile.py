"""nox sessions of qmac: tests, lint, rtl (regenerate and diff the Verilog), bench, mutants."""

import difflib
import filecmp
import fnmatch
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).resolve().parent
LINTED = ["golden", "hw", "nets", "sim", "tests", "noxfile.py"]


@nox.session
def tests(session):
    """pytest on every core (extra arguments go to pytest: ``nox -s tests -- -m "not rtl"``)."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-n", "auto", *session.posargs)


@nox.session
def lint(session):
    """ruff over the Python sources, the tests and this file."""
    session.install("ruff")
    session.run("ruff", "check", *LINTED, *session.posargs)


def _rtl_diff(generated, committed, max_lines=200):
    """A readable account of how ``generated`` differs from ``committed`` ('' if equal)."""
    report = []
    new = {p.name for p in generated.iterdir()}
    old = {p.name for p in committed.iterdir()}
    for name in sorted(new - old):
        report.append(f"rtl/{name}: missing (the generator writes it)")
    for name in sorted(old - new):
        report.append(f"rtl/{name}: not written by the generator")
    for name in sorted(new & old):
        if filecmp.cmp(generated / name, committed / name, shallow=False):
            continue
        diff = list(difflib.unified_diff(
            (committed / name).read_text().splitlines(keepends=True),
            (generated / name).read_text().splitlines(keepends=True),
            fromfile=f"rtl/{name}", tofile=f"regenerated/{name}"))
        if len(diff) > max_lines:
            diff = diff[:max_lines] + [f"... ({len(diff) - max_lines} more diff lines)\n"]
        report.append("".join(diff).rstrip("\n"))
    return "\n".join(report)


@nox.session
def rtl(session):
    """Regenerate the default designs with lint, and fail if rtl/ differs from them."""
    session.install("-e", ".[sim]")
    out = Path(session.create_tmp()) / "rtl"
    if out.exists():
        for path in out.iterdir():
            path.unlink()
    session.run("python", "-m", "hw.build", "--out", str(out), "--lint")
    diff = _rtl_diff(out, ROOT / "rtl")
    if diff:
        session.error("rtl/ is not what `python -m hw.build` writes; regenerate it with "
                      "`python -m hw.build` and commit the result.\n" + diff)
    session.log("rtl/ matches the generator and lints clean")


@nox.session
def bench(session):
    """Benchmarks: the golden model, and the cycle model and hardware ones where they exist."""
    session.install("-e", ".")
    for package in ("golden", "sim", "hw"):
        module = f"{package}.bench"
        if (ROOT / package / "bench.py").exists():
            session.run("python", "-m", module)
        else:
            session.log(f"skipping {module}: {os.path.join(package, 'bench.py')} does not exist")


#: The mutants `nox -s mutants` tests (mutmut names, fnmatch patterns): every function of
#: golden's fixed-point, GEMM and quantization modules, and the latency table that the
#: generator and the cycle model share (``latencies`` and ``output_stage_name`` in
#: hw/config.py). mutmut mutates whole files, so the rest of hw/config.py is mutated too
#: but not tested.
MUTANTS = ("golden.fixedpoint.*", "golden.gemm.*", "golden.quant.*",
           "hw.config.x_latencies__*", "hw.config.x_output_stage_name__*")
#: A mutant name as mutmut prints it (module, x_function or x<sep>Class<sep>method, number).
_MUTANT_NAME = re.compile(r"\b(?:golden|hw|sim)\.[\w.\u01c1]+__mutmut_\d+\b")


def _equivalent_mutants():
    """The mutant names listed as equivalent in the README's "Mutation testing" section."""
    text = (ROOT / "README.md").read_text()
    if "## Mutation testing" not in text:
        return set()
    section = text.split("## Mutation testing", 1)[1].split("\n## ", 1)[0]
    return set(_MUTANT_NAME.findall(section))


@nox.session
def mutants(session):
    """Mutation testing with mutmut: golden.fixedpoint, golden.gemm, golden.quant and the
    latency table (hw.config, shared by the generator and the cycle model), against the
    fast tests in ``[tool.mutmut]`` (pyproject.toml).

    Prints the counts and every surviving mutant's diff, and fails if a survivor is not
    one of the equivalent mutants the README lists. CPU-heavy (about half an hour on 2
    cores): run it in the background. ``nox -s mutants -- N`` uses N worker processes
    (default: all cores). mutmut's work directory ``mutants/`` is rebuilt on every run;
    ``mutmut show NAME`` and ``mutmut apply NAME`` work on it afterwards.
    """
    session.install("-e", ".[dev]")
    shared = Path(os.environ.get("QMAC_SHARED", ROOT.parent / "shared")).resolve()
    # A fixed base seed: a mutant's verdict must not depend on the data a run drew.
    env = {"QMAC_SHARED": str(shared), "QMAC_SEED": os.environ.get("QMAC_SEED", "1")}
    children = session.posargs[0] if session.posargs else str(os.cpu_count() or 1)
    # From scratch: mutmut's cached test-to-function map does not notice edited tests.
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    start = time.monotonic()
    session.run("mutmut", "run", "--max-children", children, *MUTANTS, env=env)
    minutes = (time.monotonic() - start) / 60
    listing = subprocess.run([shutil.which("mutmut", path=session.bin), "results", "--all",
                              "true"], capture_output=True, text=True, check=True, cwd=ROOT,
                             env={**os.environ, **env}).stdout
    status = {}
    for line in listing.splitlines():
        name, _, verdict = line.strip().rpartition(": ")
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in MUTANTS):
            status[name] = verdict
    counts = {v: sum(1 for x in status.values() if x == v) for v in sorted(set(status.values()))}
    session.log(f"{len(status)} mutants in {minutes:.0f} min: "
                + ", ".join(f"{n} {verdict}" for verdict, n in counts.items()))
    survivors = sorted(name for name, verdict in status.items() if verdict != "killed")
    for name in survivors:
        session.run("mutmut", "show", name, env=env, silent=False)
    unexplained = sorted(set(survivors) - _equivalent_mutants())
    if unexplained:
        session.error(f"{len(unexplained)} mutants not killed and not listed as equivalent in "
                      "the README: " + ", ".join(unexplained))
