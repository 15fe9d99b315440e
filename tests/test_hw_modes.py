"""PE-mode strategies: one plain-Python object (hw.modes) and one gateware class (hw.pe) per
mode, and everything that differs between modes reached through them."""

import re

import numpy as np
import pytest

from hw.config import PE_MODES, ArrayConfig
from hw.modes import PE_MODE_OBJECTS, BitSerialMode, MacMode, XnorMode
from hw.pe import BitSerialPE, MacPE, XnorPE, pe_arithmetic

CONFIGS = {"mac": ArrayConfig(rows=2, cols=3),
           "xnor": ArrayConfig(rows=2, cols=3, pe_mode="xnor", pack=4),
           "bitserial": ArrayConfig(rows=2, cols=3, pe_mode="bitserial", pack=2, a_bits=3,
                                    w_bits=5, w_signed=False)}


def test_one_strategy_per_mode_in_both_layers():
    assert PE_MODES == tuple(PE_MODE_OBJECTS) == ("mac", "xnor", "bitserial")
    assert [type(PE_MODE_OBJECTS[m]) for m in PE_MODES] == [MacMode, XnorMode, BitSerialMode]
    assert [type(pe_arithmetic(CONFIGS[m])) for m in PE_MODES] == [MacPE, XnorPE, BitSerialPE]
    for mode in PE_MODES:
        assert CONFIGS[mode].mode is PE_MODE_OBJECTS[mode]


def test_bit_planes_belong_to_the_bit_serial_mode():
    assert [CONFIGS[m].mode.has_planes for m in PE_MODES] == [False, False, True]
    config = CONFIGS["bitserial"]
    assert config.mode.planes(config) == (3, 5)
    assert config.mode.planes(config, 1, 4) == (1, 4)
    with pytest.raises(ValueError, match=r"^w_planes must be in 1\.\.5, not 6$"):
        config.mode.planes(config, 2, 6)
    assert config.mode.schedule_planes(config, (2, 4)) == (2, 4)
    assert CONFIGS["mac"].mode.schedule_planes(CONFIGS["mac"], (8, 8)) == (1, 1)


def test_element_ranges_and_stream_codes():
    mac, xnor, bs = (CONFIGS[m] for m in PE_MODES)
    assert mac.mode.element_range(mac, "a", (8, 8)) == (-128, 127)
    assert bs.mode.element_range(bs, "w", (3, 2)) == (0, 3)
    assert xnor.mode.element_range(xnor, "a", (1, 1)) == (-1, 1)
    codes = xnor.mode.codes("a", np.array([[1, -1, -1, 1]]), (-1, 1))
    assert codes.tolist() == [[1, 0, 0, 1]]
    with pytest.raises(ValueError, match=r"^w must hold -1 and \+1 only \(pe_mode 'xnor'\), "
                                         r"not 0$"):
        xnor.mode.codes("w", np.array([1, 0]), (-1, 1))
    with pytest.raises(ValueError, match=r"^a must hold integers in 0\.\.3, not 4$"):
        bs.mode.codes("a", np.array([4]), (0, 3))


def test_command_fields_per_mode():
    fields = {m: set(pe_arithmetic(CONFIGS[m]).command_fields(None)) for m in PE_MODES}
    assert fields == {"mac": {"a_zero_point"}, "xnor": set(),
                      "bitserial": {"a_planes", "w_planes"}}


def test_names_and_descriptions_come_from_the_mode():
    assert [CONFIGS[m].default_name for m in PE_MODES] == [
        "qmac_ws_2x3_a8w8", "qmac_ws_2x3_xnor_p4", "qmac_ws_2x3_a3wu5_bs_p2"]
    assert [CONFIGS[m].describe() for m in PE_MODES] == [
        "2x3 ws mac a8 w8 acc32, requantized", "2x3 ws xnor x4 acc32, requantized",
        "2x3 ws bitserial x2 a3 w5 acc32, requantized"]
    assert [CONFIGS[m].peak_macs_per_pe() for m in PE_MODES] == [1.0, 4.0, 2 / 15]


def test_hw_and_sim_have_no_string_switch_on_pe_mode():
    # What differs between modes is reached through the strategies; only hw.config names
    # the modes (and the oracle check of hw.regress asks for the int8 mac engine).
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    switch = re.compile(r"pe_mode\s*(==|!=|in\b)|\[\s*\w*\.?pe_mode\s*\]")
    found = [f"{path.relative_to(root)}:{number}"
             for folder in ("hw", "sim") for path in sorted((root / folder).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if switch.search(line) and path.name not in ("config.py", "regress.py")]
    assert found == []
