"""The folders show the architecture: sim/ takes only the configuration from hw/, and the
tool flow lives in hw.flow behind its documented ``hw.<tool>`` names."""

import importlib
import subprocess
import sys

import pytest

TOOLS = ("build", "regress", "bench", "synth", "toolchain", "rtlsim", "emit")


def test_sim_imports_only_the_configuration_from_hw():
    code = ("import sys, sim.engine_model, sim.perf, sim.bench, sim.topology, sim.scalesim; "
            "print(' '.join(sorted(m for m in sys.modules if m == 'hw' or m.startswith('hw.')"
            ")))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    # hw.modes is the configuration's own module of PE-mode rules (plain Python).
    assert loaded == ["hw", "hw.config", "hw.modes"]
    assert "amaranth" not in subprocess.run(
        [sys.executable, "-c", "import sys, sim.engine_model; print(sorted(sys.modules))"],
        capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("tool", TOOLS)
def test_documented_tool_names_are_the_flow_modules(tool):
    assert importlib.import_module(f"hw.{tool}") is importlib.import_module(f"hw.flow.{tool}")
