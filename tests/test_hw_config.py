"""``ArrayConfig``: every validation rule with its exact message, derived sizes, CLI flags.

Messages are matched whole with anchored regexes; derived sizes are compared with values
worked out by hand from the docstrings.
"""

import argparse
import dataclasses
import json

import numpy as np
import pytest

from hw.config import (
    DATAFLOWS,
    DEFAULT_CONFIGS,
    GENERATOR_MAX_DIM,
    MODEL_MAX_DIM,
    PE_MODES,
    ArrayConfig,
    add_config_arguments,
    ceil_log2,
    config_from_args,
)

FIELDS = [f.name for f in dataclasses.fields(ArrayConfig)]


def check_refused(exc, pattern, **fields):
    with pytest.raises(exc, match=pattern):
        ArrayConfig(**fields)


# --- integer ranges -------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "pattern"), [
    ({"rows": 0}, r"^ArrayConfig\.rows must be an integer in 1\.\.256, not 0$"),
    ({"rows": 257}, r"^ArrayConfig\.rows must be an integer in 1\.\.256, not 257$"),
    ({"cols": 0}, r"^ArrayConfig\.cols must be an integer in 1\.\.256, not 0$"),
    ({"cols": -3}, r"^ArrayConfig\.cols must be an integer in 1\.\.256, not -3$"),
    ({"cols": 257}, r"^ArrayConfig\.cols must be an integer in 1\.\.256, not 257$"),
    ({"a_bits": 1}, r"^ArrayConfig\.a_bits must be an integer in 2\.\.16, not 1$"),
    ({"a_bits": 17}, r"^ArrayConfig\.a_bits must be an integer in 2\.\.16, not 17$"),
    ({"w_bits": 1}, r"^ArrayConfig\.w_bits must be an integer in 2\.\.16, not 1$"),
    ({"w_bits": 17}, r"^ArrayConfig\.w_bits must be an integer in 2\.\.16, not 17$"),
    ({"acc_bits": 1}, r"^ArrayConfig\.acc_bits must be an integer in 2\.\.32, not 1$"),
    ({"acc_bits": 33}, r"^ArrayConfig\.acc_bits must be an integer in 2\.\.32, not 33$"),
    ({"out_bits": 1}, r"^ArrayConfig\.out_bits must be an integer in 2\.\.16, not 1$"),
    ({"out_bits": 17}, r"^ArrayConfig\.out_bits must be an integer in 2\.\.16, not 17$"),
    ({"max_m": 0}, r"^ArrayConfig\.max_m must be an integer in 1\.\.65535, not 0$"),
    ({"max_m": 65536}, r"^ArrayConfig\.max_m must be an integer in 1\.\.65535, not 65536$"),
    ({"max_k": 0}, r"^ArrayConfig\.max_k must be an integer in 1\.\.4096, not 0$"),
    ({"max_k": 4097}, r"^ArrayConfig\.max_k must be an integer in 1\.\.4096, not 4097$"),
    ({"max_n": 0}, r"^ArrayConfig\.max_n must be an integer in 1\.\.4096, not 0$"),
    ({"max_n": 4097}, r"^ArrayConfig\.max_n must be an integer in 1\.\.4096, not 4097$"),
    ({"block_rows": 0}, r"^ArrayConfig\.block_rows must be an integer in 1\.\.1024, not 0$"),
    ({"block_rows": 1025},
     r"^ArrayConfig\.block_rows must be an integer in 1\.\.1024, not 1025$"),
    ({"out_depth": 4097}, r"^ArrayConfig\.out_depth must be an integer in 3\.\.4096, not 4097$"),
])
def test_integer_out_of_range(fields, pattern):
    check_refused(ValueError, pattern, **fields)


@pytest.mark.parametrize("fields", [
    {"acc_bits": 2},
    {"acc_bits": 15},                                   # one bit below an a8w8 product
    {"a_bits": 16, "w_bits": 16, "acc_bits": 32},       # a product fills all 32 bits
    {"a_bits": 16, "w_bits": 16, "w_signed": False, "acc_bits": 32},
    {"a_bits": 4, "a_signed": False, "w_bits": 6, "acc_bits": 3},
])
def test_acc_bits_narrower_than_a_product_is_accepted(fields):
    # Wrap-around is arithmetic modulo 2**acc_bits, well defined at any width.
    config = ArrayConfig(**fields)
    assert config.acc_bits == fields["acc_bits"]


@pytest.mark.parametrize(("fields", "pattern"), [
    # The minimum output FIFO holds one output-stationary tile of `rows` results plus one,
    # and at least 3 words (a 2-word SyncFIFOBuffered has zero-width pointers).
    ({"dataflow": "os", "rows": 4, "out_depth": 4},
     r"^ArrayConfig\.out_depth must be an integer in 5\.\.4096, not 4$"),
    ({"dataflow": "os", "rows": 1, "cols": 7, "out_depth": 2},
     r"^ArrayConfig\.out_depth must be an integer in 3\.\.4096, not 2$"),
    ({"dataflow": "ws", "rows": 9, "out_depth": 2},
     r"^ArrayConfig\.out_depth must be an integer in 3\.\.4096, not 2$"),
])
def test_out_depth_minimum(fields, pattern):
    check_refused(ValueError, pattern, **fields)


def test_out_depth_minimum_is_accepted():
    assert ArrayConfig(dataflow="os", rows=4, out_depth=5).fifo_depth == 5
    assert ArrayConfig(dataflow="ws", rows=4, out_depth=3).fifo_depth == 3


# --- types ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "pattern"), [
    ({"rows": True}, r"^ArrayConfig\.rows must be an integer in 1\.\.256, not True$"),
    ({"cols": False}, r"^ArrayConfig\.cols must be an integer in 1\.\.256, not False$"),
    ({"rows": 4.0}, r"^ArrayConfig\.rows must be an integer in 1\.\.256, not 4\.0$"),
    ({"a_bits": "8"}, r"^ArrayConfig\.a_bits must be an integer in 2\.\.16, not '8'$"),
    ({"acc_bits": True}, r"^ArrayConfig\.acc_bits must be an integer in 2\.\.32, not True$"),
    ({"max_k": None}, r"^ArrayConfig\.max_k must be an integer in 1\.\.4096, not None$"),
    ({"block_rows": True},
     r"^ArrayConfig\.block_rows must be an integer in 1\.\.1024, not True$"),
    ({"out_depth": 64.0}, r"^ArrayConfig\.out_depth must be an integer in 3\.\.4096, not 64\.0$"),
])
def test_integer_field_wrong_type(fields, pattern):
    check_refused(TypeError, pattern, **fields)


_WRONG_FLAGS = [(1, "1"), (0, "0"), ("yes", "'yes'"), (None, "None")]


# requant=None is not wrong: it means the default (see test_requant_default_follows_threshold).
@pytest.mark.parametrize(("field", "value", "shown"), [
    (field, value, shown)
    for field in ("a_signed", "w_signed", "requant", "threshold", "out_signed")
    for value, shown in _WRONG_FLAGS if not (field == "requant" and value is None)])
def test_flag_wrong_type(field, value, shown):
    check_refused(TypeError, rf"^ArrayConfig\.{field} must be True or False, not {shown}$",
                  **{field: value})


def test_numpy_integers_are_stored_as_int():
    config = ArrayConfig(rows=np.int64(3), max_k=np.int32(9), block_rows=np.uint8(5))
    assert type(config.rows) is int and type(config.max_k) is int
    assert type(config.block_rows) is int
    assert json.loads(json.dumps(config.to_dict()))["rows"] == 3


# --- choices --------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "pattern"), [
    ({"dataflow": "xy"}, r"^ArrayConfig\.dataflow must be one of ws, os, not 'xy'$"),
    ({"dataflow": "WS"}, r"^ArrayConfig\.dataflow must be one of ws, os, not 'WS'$"),
    ({"dataflow": None}, r"^ArrayConfig\.dataflow must be one of ws, os, not None$"),
    ({"pe_mode": "XNOR"},
     r"^ArrayConfig\.pe_mode must be one of mac, xnor, bitserial, not 'XNOR'$"),
    ({"pe_mode": ""}, r"^ArrayConfig\.pe_mode must be one of mac, xnor, bitserial, not ''$"),
])
def test_unknown_choice(fields, pattern):
    check_refused(ValueError, pattern, **fields)


@pytest.mark.parametrize("field", ["rows", "cols"])
def test_generator_limit(field):
    # The cycle model takes arrays up to MODEL_MAX_DIM; the generator builds up to 64.
    assert (GENERATOR_MAX_DIM, MODEL_MAX_DIM) == (64, 256)
    for value in (1, 64):
        config = ArrayConfig(**{field: value})
        assert config.check_generatable() is config
    for value in (65, 256):
        with pytest.raises(ValueError, match=rf"^ArrayConfig\.{field} must be at most 64 for the "
                                             rf"hardware generator, not {value} \(larger arrays "
                                             rf"can only be modelled\)$"):
            ArrayConfig(**{field: value}).check_generatable()


def test_choice_tuples():
    assert DATAFLOWS == ("ws", "os")
    assert PE_MODES == ("mac", "xnor", "bitserial")


@pytest.mark.parametrize(("rows", "block_rows"), [(4, 8), (4, 3), (1, 2)])
def test_os_block_rows_must_equal_rows(rows, block_rows):
    check_refused(ValueError, rf"^ArrayConfig\.block_rows must equal rows \({rows}\) for the "
                  rf"output-stationary dataflow, not {block_rows}$",
                  dataflow="os", rows=rows, block_rows=block_rows)


def test_os_block_rows_equal_rows_is_accepted():
    assert ArrayConfig(dataflow="os", rows=3, block_rows=3).block == 3


def test_replace_validates_again():
    base = ArrayConfig()
    assert base.replace(rows=7).rows == 7
    with pytest.raises(ValueError, match=r"^ArrayConfig\.rows must be an integer in 1\.\.256, "
                                         r"not 0$"):
        base.replace(rows=0)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ArrayConfig().rows = 3


# --- dict round trip ------------------------------------------------------------------------

def test_from_dict_unknown_key():
    names = ", ".join(sorted(FIELDS))
    with pytest.raises(ValueError, match=rf"^ArrayConfig has no field 'depth'; fields are "
                                         rf"{names}$"):
        ArrayConfig.from_dict({"rows": 2, "depth": 3, "zeta": 1})


def test_from_dict_validates():
    with pytest.raises(ValueError, match=r"^ArrayConfig\.cols must be an integer in 1\.\.256, "
                                         r"not 999$"):
        ArrayConfig.from_dict({"cols": 999})


@pytest.mark.parametrize("config", [
    ArrayConfig(),
    ArrayConfig(rows=3, cols=5, dataflow="os", requant=False, acc_bits=20),
    ArrayConfig(a_bits=4, a_signed=False, w_bits=6, out_bits=4, out_signed=False,
                block_rows=7, out_depth=9, max_m=5, max_k=6, max_n=7),
    *DEFAULT_CONFIGS,
])
def test_dict_round_trip(config):
    d = config.to_dict()
    assert set(d) == set(FIELDS)
    # to_dict resolves the derived defaults, so they come back as explicit values.
    assert d["block_rows"] == config.block
    assert d["out_depth"] == config.fifo_depth
    again = ArrayConfig.from_dict(d)
    assert again.to_dict() == d
    for f in FIELDS:
        if f not in ("block_rows", "out_depth"):
            assert getattr(again, f) == getattr(config, f)
    assert json.loads(json.dumps(d)) == d


# --- derived sizes (hand-derived) -----------------------------------------------------------

# |a - zp| <= 2**a - 1 and |w| <= 2**(w - 1): |product| < 2**(a + w - 1), so a + w signed bits;
# an unsigned weight (|w| <= 2**w - 1) needs one more.
@pytest.mark.parametrize(("fields", "product_bits"), [
    ({}, 16),
    ({"w_signed": False}, 17),
    ({"a_signed": False}, 16),                              # the zero point spans both signs
    ({"a_bits": 4, "a_signed": False, "w_bits": 6}, 10),
    ({"a_bits": 2, "w_bits": 2, "w_signed": False}, 5),
    ({"a_bits": 16, "w_bits": 16}, 32),
    ({"a_bits": 16, "w_bits": 16, "w_signed": False}, 33),
])
def test_product_bits(fields, product_bits):
    assert ArrayConfig(**fields).product_bits == product_bits


@pytest.mark.parametrize(("fields", "block"), [
    ({"rows": 4, "cols": 4}, 8),                            # 2 * max(4, 4)
    ({"rows": 3, "cols": 5}, 10),                           # 2 * max(3, 5)
    ({"rows": 6, "cols": 2}, 12),
    ({"rows": 1, "cols": 1}, 2),
    ({"rows": 3, "cols": 5, "block_rows": 7}, 7),
    ({"rows": 3, "cols": 5, "dataflow": "os"}, 3),          # always rows
    ({"rows": 1, "cols": 9, "dataflow": "os"}, 1),
])
def test_block(fields, block):
    assert ArrayConfig(**fields).block == block


@pytest.mark.parametrize(("rows", "max_k", "k_chunks"), [
    (4, 256, 64), (3, 256, 86), (8, 1, 1), (1, 7, 7), (5, 10, 2), (5, 11, 3), (64, 4096, 64),
])
def test_k_chunks(rows, max_k, k_chunks):
    assert ArrayConfig(rows=rows, max_k=max_k).k_chunks == k_chunks


@pytest.mark.parametrize(("cols", "max_n", "n_tiles"), [
    (4, 256, 64), (5, 256, 52), (8, 1, 1), (1, 3, 3), (3, 9, 3), (3, 10, 4),
])
def test_n_tiles(cols, max_n, n_tiles):
    assert ArrayConfig(cols=cols, max_n=max_n).n_tiles == n_tiles


@pytest.mark.parametrize(("fields", "depth"), [
    ({"rows": 4, "cols": 4}, 64),       # 4 * 8 + 16 = 48 -> 64
    ({"rows": 8, "cols": 8}, 128),      # 80 -> 128
    ({"rows": 1, "cols": 1}, 32),       # 24 -> 32
    ({"rows": 2, "cols": 2}, 32),       # 32 -> 32 (already a power of two)
    ({"rows": 2, "cols": 3}, 64),       # 36 -> 64
    ({"rows": 3, "cols": 5, "dataflow": "os"}, 64),   # 48 -> 64
    ({"rows": 64, "cols": 64}, 1024),   # 528 -> 1024
    ({"rows": 4, "cols": 4, "out_depth": 7}, 7),
    ({"rows": 4, "cols": 4, "out_depth": 4096}, 4096),
])
def test_fifo_depth(fields, depth):
    assert ArrayConfig(**fields).fifo_depth == depth


@pytest.mark.parametrize(("fields", "width"), [
    ({}, 8), ({"out_bits": 4}, 4), ({"requant": False}, 32),
    ({"requant": False, "acc_bits": 20}, 20),
])
def test_out_width(fields, width):
    assert ArrayConfig(**fields).out_width == width


@pytest.mark.parametrize(("value", "bits"), [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (48, 6),
                                             (64, 6), (65, 7), (4097, 13)])
def test_ceil_log2(value, bits):
    assert ceil_log2(value) == bits


@pytest.mark.parametrize(("fields", "name"), [
    ({"rows": 8, "cols": 8}, "qmac_ws_8x8_a8w8"),
    ({"rows": 3, "cols": 5, "dataflow": "os", "requant": False, "acc_bits": 20},
     "qmac_os_3x5_a8w8_acc20"),
    ({"rows": 2, "cols": 2, "a_bits": 4, "a_signed": False, "w_bits": 6}, "qmac_ws_2x2_au4w6"),
    ({"w_signed": False}, "qmac_ws_4x4_a8wu8"),
])
def test_default_name(fields, name):
    assert ArrayConfig(**fields).default_name == name


def test_default_configs():
    assert [c.default_name for c in DEFAULT_CONFIGS] == [
        "qmac_ws_8x8_a8w8", "qmac_os_8x8_a8w8", "qmac_ws_8x8_xnor_p8", "qmac_ws_8x8_a8w8_bs_p8"]


# --- low-bit PE modes -----------------------------------------------------------------------

def test_low_bit_defaults():
    xnor = ArrayConfig(pe_mode="xnor")
    assert (xnor.a_bits, xnor.w_bits, xnor.pack, xnor.requant) == (1, 1, 8, True)
    bitserial = ArrayConfig(pe_mode="bitserial")
    assert (bitserial.a_bits, bitserial.w_bits, bitserial.pack) == (8, 8, 8)
    mac = ArrayConfig()
    assert (mac.a_bits, mac.w_bits, mac.pack) == (8, 8, 1)


@pytest.mark.parametrize(("fields", "exc", "pattern"), [
    ({"pack": 2}, ValueError, r"^ArrayConfig\.pack must be 1 for pe_mode 'mac', not 2$"),
    ({"pack": 0}, ValueError, r"^ArrayConfig\.pack must be an integer in 1\.\.64, not 0$"),
    ({"pe_mode": "xnor", "pack": 3}, ValueError,
     r"^ArrayConfig\.pack must be a power of two in 1\.\.64 \(1, 2, 4, 8, 16, 32, 64\), not 3$"),
    ({"pe_mode": "bitserial", "pack": 128}, ValueError,
     r"^ArrayConfig\.pack must be an integer in 1\.\.64, not 128$"),
    ({"pe_mode": "xnor", "pack": 4.0}, TypeError,
     r"^ArrayConfig\.pack must be an integer in 1\.\.64, not 4\.0$"),
    ({"pe_mode": "xnor", "a_bits": 8}, ValueError,
     r"^ArrayConfig\.a_bits must be 1 for pe_mode 'xnor' \(one bit per element\), not 8$"),
    ({"pe_mode": "xnor", "w_bits": 2}, ValueError,
     r"^ArrayConfig\.w_bits must be 1 for pe_mode 'xnor' \(one bit per element\), not 2$"),
    ({"pe_mode": "xnor", "a_signed": False}, ValueError,
     r"^ArrayConfig\.a_signed must be True for pe_mode 'xnor' \(its bits stand for -1 and "
     r"\+1\), not False$"),
    ({"pe_mode": "xnor", "w_signed": False}, ValueError,
     r"^ArrayConfig\.w_signed must be True for pe_mode 'xnor'"),
    ({"pe_mode": "bitserial", "a_bits": 0}, ValueError,
     r"^ArrayConfig\.a_bits must be an integer in 1\.\.16, not 0$"),
    ({"pe_mode": "bitserial", "w_bits": 17}, ValueError,
     r"^ArrayConfig\.w_bits must be an integer in 1\.\.16, not 17$"),
    ({"a_bits": 1}, ValueError, r"^ArrayConfig\.a_bits must be an integer in 2\.\.16, not 1$"),
    ({"threshold": True, "requant": True}, ValueError,
     r"^ArrayConfig\.requant must be False when threshold is True \(the threshold compares "
     r"replace the requantizer\), not True$"),
    ({"max_k": 4097}, ValueError, r"^ArrayConfig\.max_k must be an integer in 1\.\.4096, "
     r"not 4097$"),
    ({"pe_mode": "xnor", "max_k": 65536}, ValueError,
     r"^ArrayConfig\.max_k must be an integer in 1\.\.65535, not 65536$"),
])
def test_low_bit_refused(fields, exc, pattern):
    check_refused(exc, pattern, **fields)


def test_low_bit_accepted_edges():
    for pack in (1, 2, 64):
        assert ArrayConfig(pe_mode="xnor", pack=pack).pack == pack
    assert ArrayConfig(pe_mode="bitserial", a_bits=1, w_bits=16).a_bits == 1
    assert ArrayConfig(pe_mode="xnor", max_k=65535).max_k == 65535


def test_requant_default_follows_threshold():
    assert ArrayConfig().requant is True and ArrayConfig().has_params
    config = ArrayConfig(threshold=True)
    assert config.requant is False and config.has_params and config.out_width == 1
    raw = ArrayConfig(requant=False)
    assert not raw.has_params and raw.out_width == 32
    assert ArrayConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


@pytest.mark.parametrize(("fields", "chunk", "k_words", "k_chunks"), [
    ({"rows": 4, "max_k": 256}, 4, 256, 64),
    ({"rows": 4, "pe_mode": "xnor", "pack": 8, "max_k": 257}, 32, 33, 9),
    ({"rows": 3, "pe_mode": "bitserial", "pack": 2, "max_k": 5}, 6, 3, 1),
])
def test_word_and_chunk_sizes(fields, chunk, k_words, k_chunks):
    config = ArrayConfig(**fields)
    assert (config.chunk, config.k_words, config.k_chunks) == (chunk, k_words, k_chunks)


@pytest.mark.parametrize(("fields", "name"), [
    ({"pe_mode": "xnor"}, "qmac_ws_4x4_xnor_p8"),
    ({"pe_mode": "xnor", "pack": 32, "threshold": True, "dataflow": "os"},
     "qmac_os_4x4_xnor_p32_thr"),
    ({"pe_mode": "xnor", "requant": False, "acc_bits": 16}, "qmac_ws_4x4_xnor_p8_acc16"),
    ({"pe_mode": "bitserial", "a_bits": 4, "a_signed": False, "pack": 2},
     "qmac_ws_4x4_au4w8_bs_p2"),
])
def test_low_bit_default_name(fields, name):
    assert ArrayConfig(**fields).default_name == name


# --- command-line flags ---------------------------------------------------------------------

def parser():
    p = argparse.ArgumentParser()
    add_config_arguments(p)
    return p


def flags_for(config):
    """The command line that spells out every field of ``config``."""
    argv = []
    for f in FIELDS:
        value = getattr(config, f)
        flag = "--" + f.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + f.replace("_", "-"))
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def test_every_field_has_a_flag():
    options = {s for a in parser()._actions for s in a.option_strings}
    for f in FIELDS:
        assert "--" + f.replace("_", "-") in options, f


def test_no_flags_gives_none():
    assert config_from_args(parser().parse_args([])) is None


@pytest.mark.parametrize("config", [
    ArrayConfig(rows=3, cols=5, dataflow="os", requant=False, acc_bits=20, max_m=9, max_k=10,
                max_n=11, out_depth=17),
    ArrayConfig(rows=2, cols=7, a_bits=4, a_signed=False, w_bits=6, w_signed=False, acc_bits=24,
                out_bits=4, out_signed=False, block_rows=5, max_m=100, max_k=33, max_n=12,
                out_depth=3),
    ArrayConfig(),
    ArrayConfig(pe_mode="xnor", pack=16, threshold=True, dataflow="os", max_k=1000),
    ArrayConfig(pe_mode="bitserial", a_bits=3, w_bits=2, w_signed=False, pack=4),
    *DEFAULT_CONFIGS,
])
def test_flags_round_trip(config):
    assert config_from_args(parser().parse_args(flags_for(config))) == config


def test_unset_flags_keep_defaults():
    config = config_from_args(parser().parse_args(["--cols", "3", "--no-requant"]))
    assert config == ArrayConfig(cols=3, requant=False)


def test_bool_flags_both_ways():
    p = parser()
    assert config_from_args(p.parse_args(["--no-a-signed"])).a_signed is False
    assert config_from_args(p.parse_args(["--a-signed"])).a_signed is True
    assert config_from_args(p.parse_args(["--no-out-signed"])).out_signed is False


def test_flags_validated_by_config():
    args = parser().parse_args(["--rows", "0"])
    with pytest.raises(ValueError, match=r"^ArrayConfig\.rows must be an integer in 1\.\.256, "
                                         r"not 0$"):
        config_from_args(args)
    args = parser().parse_args(["--dataflow", "xy"])
    with pytest.raises(ValueError, match=r"^ArrayConfig\.dataflow must be one of ws, os, "
                                         r"not 'xy'$"):
        config_from_args(args)


@pytest.mark.parametrize(("fields", "text"), [
    ({"rows": 8, "cols": 8}, "8x8 ws mac a8 w8 acc32, requantized"),
    ({"dataflow": "os", "pe_mode": "xnor", "pack": 16, "threshold": True},
     "4x4 os xnor x16 acc32, threshold bits"),
    ({"pe_mode": "bitserial", "a_bits": 4, "w_bits": 2, "requant": False, "acc_bits": 20},
     "4x4 ws bitserial x8 a4 w2 acc20, raw accumulators"),
])
def test_describe(fields, text):
    assert ArrayConfig(**fields).describe() == text


@pytest.mark.parametrize(("fields", "planes", "peak"), [
    ({}, None, 1.0),
    ({"pe_mode": "xnor", "pack": 32}, None, 32.0),
    ({"pe_mode": "bitserial", "pack": 8}, None, 8 / 64),
    ({"pe_mode": "bitserial", "pack": 8}, (2, 1), 4.0),
])
def test_peak_macs_per_pe(fields, planes, peak):
    assert ArrayConfig(**fields).peak_macs_per_pe(planes) == peak
