"""nox sessions of qmac: tests, lint, rtl (regenerate, diff and lint the Verilog), bench."""

import difflib
import filecmp
import os
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).resolve().parent
LINTED = ["golden", "hw", "nets", "sim", "tests", "noxfile.py"]


@nox.session
def tests(session):
    """Run pytest (extra arguments go to pytest, e.g. ``nox -s tests -- -m 'not rtl'``)."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


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
