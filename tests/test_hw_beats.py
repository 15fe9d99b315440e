"""``StreamCodec``: beats of every stream against hand-packed words, counts, order, round trips.

Hand-derived words come from the documented layouts (field order and widths of
``hw.interfaces``); the codec is also compared with Amaranth's own packing of the same
layouts (``Layout.const(...).as_bits()``).
"""

import numpy as np
import pytest

import golden
from hw.beats import Gemm, StreamCodec
from hw.config import ArrayConfig
from hw.interfaces import act_layout, cmd_layout, par_layout, res_layout, wgt_layout


def lanes(word, width, count, signed=True):
    """Split ``word`` into ``count`` lanes of ``width`` bits (lane 0 in the low bits)."""
    out = []
    for i in range(count):
        v = (word >> (i * width)) & ((1 << width) - 1)
        if signed and v >= 1 << (width - 1):
            v -= 1 << width
        out.append(v)
    return out


def ceil_div(a, b):
    return -(-a // b)


# --- command --------------------------------------------------------------------------------

def test_command_word_requant():
    # Default limits: m needs 13 bits (4096), k and n 9 (256); then four 8-bit fields.
    codec = StreamCodec(ArrayConfig())
    gemm = Gemm(np.zeros((3, 5), int), np.zeros((5, 2), int), a_zero_point=-1,
                bias=np.zeros(2, int), m0=np.zeros(2, int), shift=np.zeros(2, int),
                out_zero_point=5, act_min=-128, act_max=127)
    expected = (3 | 5 << 13 | 2 << 22 | 0xFF << 31 | 5 << 39 | 0x80 << 47 | 0x7F << 55)
    assert codec.command(gemm) == expected
    assert cmd_layout(ArrayConfig()).size == 63


def test_command_word_raw_unsigned():
    # max 5, 6, 7 need 3 bits each; an unsigned 4-bit zero point; no output stage fields.
    config = ArrayConfig(max_m=5, max_k=6, max_n=7, a_bits=4, a_signed=False, requant=False)
    codec = StreamCodec(config)
    gemm = Gemm(np.zeros((5, 6), int), np.zeros((6, 7), int), a_zero_point=15)
    assert codec.command(gemm) == 5 | 6 << 3 | 7 << 6 | 15 << 9
    assert cmd_layout(config).size == 13


def test_command_at_the_limits():
    config = ArrayConfig(max_m=4096, max_k=255, max_n=1, out_bits=4, out_signed=False)
    codec = StreamCodec(config)
    # m: 13 bits, k: 8 bits (255), n: 1 bit; zero point 8 bits; out fields 4 bits unsigned.
    gemm = Gemm(np.zeros((4096, 255), int), np.zeros((255, 1), int), a_zero_point=-128,
                bias=np.zeros(1, int), m0=np.zeros(1, int), shift=np.zeros(1, int),
                out_zero_point=15, act_min=0, act_max=15)
    word = codec.command(gemm)
    assert word == 4096 | 255 << 13 | 1 << 21 | 0x80 << 22 | 15 << 30 | 0 << 34 | 15 << 38


@pytest.mark.parametrize("config", [
    ArrayConfig(), ArrayConfig(requant=False, a_bits=5, a_signed=False, max_m=100),
    ArrayConfig(out_bits=16, out_signed=False, max_k=4096, max_n=3, dataflow="os"),
])
def test_command_matches_amaranth_packing(config, rng):
    codec = StreamCodec(config)
    lo, hi = golden.qrange(config.a_bits, config.a_signed)
    o_lo, o_hi = golden.qrange(config.out_bits, config.out_signed)
    for _ in range(20):
        m, k, n = (int(rng.integers(1, x + 1)) for x in (min(config.max_m, 50), config.max_k,
                                                         config.max_n))
        values = {"m": m, "k": k, "n": n, "a_zero_point": int(rng.integers(lo, hi + 1))}
        if config.requant:
            values.update(out_zero_point=int(rng.integers(o_lo, o_hi + 1)),
                          act_min=int(rng.integers(o_lo, o_hi + 1)),
                          act_max=int(rng.integers(o_lo, o_hi + 1)))
        extra = {key: values[key] for key in ("out_zero_point", "act_min", "act_max")
                 if key in values}
        gemm = Gemm(np.zeros((m, k), int), np.zeros((k, n), int), values["a_zero_point"],
                    **extra)
        assert codec.command(gemm) == cmd_layout(config).const(values).as_bits()


# --- operands -------------------------------------------------------------------------------

def test_activation_beats_signed():
    codec = StreamCodec(ArrayConfig(rows=2))
    gemm = Gemm(np.array([[1, -1, 3], [-128, 127, 0]]), np.zeros((3, 1), int))
    # Row by row, two elements of K per beat (lane 0 low), the last beat of a row padded.
    assert codec.activations(gemm) == [0xFF01, 0x0003, 0x7F80, 0x0000]


def test_activation_beats_unsigned():
    codec = StreamCodec(ArrayConfig(rows=3, a_bits=4, a_signed=False))
    gemm = Gemm(np.array([[15, 0, 7, 9]]), np.zeros((4, 1), int))
    assert codec.activations(gemm) == [15 | 0 << 4 | 7 << 8, 9]


def test_weight_beats_are_channels():
    codec = StreamCodec(ArrayConfig(rows=2))
    w = np.array([[1, 2], [3, 4], [-5, -128]])      # K = 3, N = 2
    gemm = Gemm(np.zeros((1, 3), int), w)
    # Channel 0 is column 0 of W along K: [1, 3], [-5, pad]; then channel 1.
    assert codec.weights(gemm) == [0x0301, 0x00FB, 0x0402, 0x0080]


def test_weight_beats_six_bits():
    codec = StreamCodec(ArrayConfig(rows=2, w_bits=6))
    gemm = Gemm(np.zeros((1, 2), int), np.array([[-1], [-32]]))
    assert codec.weights(gemm) == [63 | 32 << 6]


def test_weight_beats_unsigned():
    codec = StreamCodec(ArrayConfig(rows=1, w_bits=3, w_signed=False))
    gemm = Gemm(np.zeros((1, 3), int), np.array([[7, 0], [5, 1], [0, 6]]))
    assert codec.weights(gemm) == [7, 5, 0, 0, 1, 6]


@pytest.mark.parametrize("rows", [1, 3, 4])
@pytest.mark.parametrize("k", [1, 4, 5, 11])
def test_chunk_padding(rows, k, rng):
    config = ArrayConfig(rows=rows, a_bits=6, w_bits=5)
    codec = StreamCodec(config)
    a = np.full((2, k), -1)                          # all ones: padding must not be ones
    w = rng.integers(-16, 16, size=(k, 3))
    w[w == 0] = -16
    gemm = Gemm(a, w)
    chunks = ceil_div(k, rows)
    acts, wgts = codec.activations(gemm), codec.weights(gemm)
    assert len(acts) == 2 * chunks and len(wgts) == 3 * chunks
    for beat_index, beat in enumerate(acts):
        chunk = beat_index % chunks
        got = lanes(beat, 6, rows)
        valid = min(rows, k - chunk * rows)
        assert got == [-1] * valid + [0] * (rows - valid)
    for channel in range(3):
        for chunk in range(chunks):
            got = lanes(wgts[channel * chunks + chunk], 5, rows)
            column = w[chunk * rows:(chunk + 1) * rows, channel].tolist()
            assert got == column + [0] * (rows - len(column))


@pytest.mark.parametrize("config", [
    ArrayConfig(rows=3, cols=2), ArrayConfig(rows=4, a_bits=4, a_signed=False, w_bits=6,
                                             w_signed=False),
    ArrayConfig(rows=2, a_bits=16, w_bits=16),
])
def test_operands_match_amaranth_packing(config, rng):
    codec = StreamCodec(config)
    a_lo, a_hi = golden.qrange(config.a_bits, config.a_signed)
    w_lo, w_hi = golden.qrange(config.w_bits, config.w_signed)
    k = config.rows * 2
    gemm = Gemm(rng.integers(a_lo, a_hi + 1, size=(3, k)), rng.integers(w_lo, w_hi + 1,
                                                                        size=(k, 2)))
    acts = [act_layout(config).const(gemm.a[i, c * config.rows:(c + 1) * config.rows].tolist())
            .as_bits() for i in range(3) for c in range(2)]
    wgts = [wgt_layout(config).const(gemm.w[c * config.rows:(c + 1) * config.rows, n].tolist())
            .as_bits() for n in range(2) for c in range(2)]
    assert codec.activations(gemm) == acts
    assert codec.weights(gemm) == wgts


def test_param_beats():
    # bias (acc_bits), then m0 (32), then shift (6), low bits first.
    codec = StreamCodec(ArrayConfig())
    gemm = Gemm(np.zeros((1, 1), int), np.zeros((1, 2), int), bias=np.array([-1, 5]),
                m0=np.array([1 << 30, -(1 << 31)]), shift=np.array([-3, 30]))
    assert codec.params(gemm) == [(2**32 - 1) | (1 << 30) << 32 | 61 << 64,
                                  5 | (1 << 31) << 32 | 30 << 64]
    narrow = StreamCodec(ArrayConfig(acc_bits=20))
    assert narrow.params(gemm)[0] == (2**20 - 1) | (1 << 30) << 20 | 61 << 52
    assert par_layout(ArrayConfig(acc_bits=20)).size == 58


def test_params_match_amaranth_packing(rng):
    config = ArrayConfig(acc_bits=24)
    codec = StreamCodec(config)
    n = 6
    bias = rng.integers(-(1 << 23), 1 << 23, size=n)
    m0 = rng.integers(-(1 << 31), 1 << 31, size=n)
    shift = rng.integers(-31, 31, size=n)
    gemm = Gemm(np.zeros((1, 1), int), np.zeros((1, n), int), bias=bias, m0=m0, shift=shift)
    assert codec.params(gemm) == [
        par_layout(config).const({"bias": int(bias[i]), "m0": int(m0[i]),
                                  "shift": int(shift[i])}).as_bits() for i in range(n)]


# --- low-bit PE modes ------------------------------------------------------------------------

def test_xnor_beats_are_bits_along_k():
    # 2 rows x 4 bits: one beat holds 8 consecutive elements of K, element e in bit e;
    # +1 is bit 1 and -1 bit 0; past K (here 10) the bits are padding (zero by default).
    codec = StreamCodec(ArrayConfig(rows=2, pe_mode="xnor", pack=4))
    a = np.array([[1, -1, -1, 1, 1, 1, -1, -1, 1, -1]])
    w = np.ones((10, 1), int)
    gemm = Gemm(a, w)
    assert codec.activations(gemm) == [0b00111001, 0b01]
    assert codec.weights(gemm) == [0xFF, 0b11]


def test_xnor_command_has_no_zero_point():
    config = ArrayConfig(pe_mode="xnor", max_m=5, max_k=1000, max_n=7, requant=False)
    codec = StreamCodec(config)
    gemm = Gemm(np.ones((5, 1000), int), np.ones((1000, 7), int))
    # m 3 bits, k 10 bits, n 3 bits; nothing else.
    assert codec.command(gemm) == 5 | 1000 << 3 | 7 << 13
    assert cmd_layout(config).size == 16


def test_bitserial_beats_and_command():
    # 2 rows x 2 elements of 3 bits (signed): beats of 4 elements along K, 3 bits each.
    config = ArrayConfig(rows=2, pe_mode="bitserial", pack=2, a_bits=3, w_bits=3,
                         w_signed=False, max_m=3, max_k=5, max_n=2, requant=False)
    codec = StreamCodec(config)
    a = np.array([[-4, 3, -1, 0, 2]])
    w = np.array([[7], [0], [5], [1], [2]])
    gemm = Gemm(a, w, a_planes=3, w_planes=3)
    assert codec.activations(gemm) == [0b100 | 0b011 << 3 | 0b111 << 6 | 0 << 9, 0b010]
    assert codec.weights(gemm) == [7 | 0 << 3 | 5 << 6 | 1 << 9, 2]
    # m 2 bits, k 3, n 2, then a_planes and w_planes 2 bits each (1..3).
    assert codec.command(gemm) == 1 | 5 << 2 | 1 << 5 | 3 << 7 | 3 << 9
    assert cmd_layout(config).size == 11


def test_bitserial_values_must_fit_the_planes():
    config = ArrayConfig(rows=2, pe_mode="bitserial", pack=2, a_bits=4, w_bits=4)
    codec = StreamCodec(config)
    # Two signed planes hold -2..1 (the elements are still 4-bit fields, sign-extended).
    gemm = Gemm(np.array([[1, -2]]), np.array([[1], [-1]]), a_planes=2, w_planes=2)
    assert codec.activations(gemm) == [0b0001 | 0b1110 << 4]
    with pytest.raises(ValueError, match=r"^a must hold integers in -2\.\.1, not 2$"):
        codec.activations(Gemm(np.array([[2, -2]]), np.array([[1], [-1]]), a_planes=2))
    with pytest.raises(ValueError, match=r"^w must hold integers in -1\.\.0, not 1$"):
        codec.weights(Gemm(np.array([[1, -2]]), np.array([[1], [-1]]), w_planes=1))
    with pytest.raises(ValueError, match=r"^a_planes must be in 1\.\.4, not 5$"):
        codec.command(Gemm(np.zeros((1, 1), int), np.zeros((1, 1), int), a_planes=5))


@pytest.mark.parametrize(("config", "a", "message"), [
    (ArrayConfig(pe_mode="xnor"), [[1, 0]], r"^a must hold -1 and \+1 only \(pe_mode 'xnor'\), "
                                            r"not 0$"),
    (ArrayConfig(a_bits=4), [[8, 0]], r"^a must hold integers in -8\.\.7, not 8$"),
    (ArrayConfig(), np.array([[0.5, 1.0]]), r"^a must be an integer array, not an array of "
                                             r"dtype float64$"),
])
def test_operands_out_of_range_are_refused(config, a, message):
    codec = StreamCodec(config)
    exc = TypeError if "dtype" in message else ValueError
    with pytest.raises(exc, match=message):
        codec.activations(Gemm(np.asarray(a), np.ones((2, 1), int)))


def test_struct_fields_out_of_range_are_refused():
    codec = StreamCodec(ArrayConfig(acc_bits=20))
    gemm = Gemm(np.zeros((1, 1), int), np.zeros((1, 1), int), bias=np.array([1 << 19]),
                m0=np.array([0]), shift=np.array([0]))
    with pytest.raises(ValueError, match=r"^bias must be in -524288\.\.524287 \(its 20-bit "
                                         r"field\), not 524288$"):
        codec.params(gemm)
    with pytest.raises(ValueError, match=r"^a_zero_point must be in -128\.\.127"):
        codec.command(Gemm(np.zeros((1, 1), int), np.zeros((1, 1), int), a_zero_point=128))


def test_threshold_params_and_results():
    config = ArrayConfig(cols=3, threshold=True, acc_bits=16)
    codec = StreamCodec(config)
    gemm = Gemm(np.zeros((1, 1), int), np.zeros((1, 2), int), threshold=np.array([-1, 300]),
                invert=np.array([1, 0]))
    # threshold (16 bits) then invert (1 bit)
    assert codec.params(gemm) == [0xFFFF | 1 << 16, 300]
    assert par_layout(config).size == 17
    assert res_layout(config).size == 3
    assert codec.unpack_result(0b101) == [1, 0, 1]


@pytest.mark.parametrize("config", [
    ArrayConfig(rows=3, pe_mode="xnor", pack=4),
    ArrayConfig(rows=2, pe_mode="bitserial", pack=2, a_bits=5, a_signed=False, w_bits=3),
    ArrayConfig(rows=1, pe_mode="bitserial", pack=1, a_bits=1, w_bits=1),
])
def test_low_bit_operands_match_amaranth_packing(config, rng):
    codec = StreamCodec(config)
    per_beat = config.chunk
    if config.pe_mode == "xnor":
        a = rng.choice([-1, 1], size=(3, 2 * per_beat))
        w = rng.choice([-1, 1], size=(2 * per_beat, 2))
        a_codes, w_codes = (a > 0).astype(int), (w > 0).astype(int)
    else:
        a_lo, a_hi = golden.qrange(config.a_bits, config.a_signed)
        w_lo, w_hi = golden.qrange(config.w_bits, config.w_signed)
        a = a_codes = rng.integers(a_lo, a_hi + 1, size=(3, 2 * per_beat))
        w = w_codes = rng.integers(w_lo, w_hi + 1, size=(2 * per_beat, 2))

    def words(values):
        """A beat's elements as the layout's nested lists: rows of pack-element words."""
        values = values.tolist()
        words = [values[r * config.pack:(r + 1) * config.pack] for r in range(config.rows)]
        if config.pe_mode == "xnor":
            return [sum(bit << e for e, bit in enumerate(word)) for word in words]
        return words

    acts = [act_layout(config).const(words(a_codes[i, c * per_beat:(c + 1) * per_beat]))
            .as_bits() for i in range(3) for c in range(2)]
    wgts = [wgt_layout(config).const(words(w_codes[c * per_beat:(c + 1) * per_beat, n]))
            .as_bits() for n in range(2) for c in range(2)]
    gemm = Gemm(a, w)
    assert codec.activations(gemm) == acts
    assert codec.weights(gemm) == wgts


def test_padding_rng_fills_only_past_k(rng):
    config = ArrayConfig(rows=2, pe_mode="xnor", pack=4)
    codec = StreamCodec(config, padding_rng=np.random.default_rng(3))
    a = np.ones((1, 5), int)
    beat, = codec.activations(Gemm(a, np.ones((5, 1), int)))
    assert beat & 0b11111 == 0b11111
    assert beat >> 5 != 0            # this seed's padding is not all zero


# --- results --------------------------------------------------------------------------------

def test_result_order_ws():
    # 2x2 weight-stationary: blocks of 2 * max(2, 2) = 4 rows; per block, per column group.
    codec = StreamCodec(ArrayConfig(rows=2, cols=2))
    assert codec.result_order(5, 3) == [(0, 0), (1, 0), (2, 0), (3, 0), (0, 2), (1, 2), (2, 2),
                                        (3, 2), (4, 0), (4, 2)]


def test_result_order_ws_block_rows():
    codec = StreamCodec(ArrayConfig(rows=2, cols=3, block_rows=3))
    assert codec.result_order(4, 4) == [(0, 0), (1, 0), (2, 0), (0, 3), (1, 3), (2, 3),
                                        (3, 0), (3, 3)]


def test_result_order_os():
    # Output-stationary blocks are `rows` rows.
    codec = StreamCodec(ArrayConfig(rows=2, cols=2, dataflow="os"))
    assert codec.result_order(3, 3) == [(0, 0), (1, 0), (0, 2), (1, 2), (2, 0), (2, 2)]


def test_result_order_single():
    assert StreamCodec(ArrayConfig(rows=1, cols=1)).result_order(1, 1) == [(0, 0)]


def test_expected_beats_signed():
    codec = StreamCodec(ArrayConfig(rows=1, cols=2))
    # Columns past N are 0 in the last group.
    assert codec.expected_beats(np.array([[1, -2, 3]])) == [0xFE01, 0x0003]


def test_expected_beats_raw():
    codec = StreamCodec(ArrayConfig(rows=1, cols=2, requant=False, acc_bits=20))
    assert codec.expected_beats(np.array([[-1, 5]])) == [0xFFFFF | 5 << 20]


def test_unpack_result_signs():
    signed = StreamCodec(ArrayConfig(cols=3, out_bits=4))
    assert signed.unpack_result(0x8F7) == [7, -1, -8]
    unsigned = StreamCodec(ArrayConfig(cols=3, out_bits=4, out_signed=False))
    assert unsigned.unpack_result(0x8F7) == [7, 15, 8]
    raw = StreamCodec(ArrayConfig(cols=1, requant=False, acc_bits=32))
    assert raw.unpack_result(0x80000000) == [-(1 << 31)]
    assert raw.unpack_result(0x7FFFFFFF) == [(1 << 31) - 1]


def test_results_refuse_wrong_beat_count():
    codec = StreamCodec(ArrayConfig(rows=2, cols=2))
    with pytest.raises(ValueError, match=r"^an 2x3 result takes 4 beats, not 3$"):
        codec.results([0, 0, 0], 2, 3)


def test_results_ignore_padding_columns():
    codec = StreamCodec(ArrayConfig(rows=1, cols=2))
    # The unused lane of the last group holds junk: it must not leak into the matrix.
    assert codec.results([0xFE01, 0x7703], 1, 3).tolist() == [[1, -2, 3]]


ROUND_TRIP = {
    "ws_4x4_out8": ArrayConfig(),
    "ws_2x3_out4": ArrayConfig(rows=2, cols=3, out_bits=4),
    "ws_3x2_out16u": ArrayConfig(rows=3, cols=2, out_bits=16, out_signed=False),
    "os_3x5_raw20": ArrayConfig(rows=3, cols=5, dataflow="os", requant=False, acc_bits=20),
    "os_1x1_out8u": ArrayConfig(rows=1, cols=1, dataflow="os", out_signed=False),
    "ws_1x4_raw32": ArrayConfig(rows=1, cols=4, requant=False),
}


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_round_trip(name, rng):
    config = ROUND_TRIP[name]
    codec = StreamCodec(config)
    if config.requant:
        lo, hi = golden.qrange(config.out_bits, config.out_signed)
    else:
        lo, hi = -(1 << (config.acc_bits - 1)), (1 << (config.acc_bits - 1)) - 1
    for m, n in [(1, 1), (1, 7), (9, 1), (13, 11), (config.block, config.cols),
                 (config.block + 1, config.cols + 1)]:
        out = rng.integers(lo, hi + 1, size=(m, n))
        out[0, 0], out[-1, -1] = lo, hi
        beats = codec.expected_beats(out)
        # One beat per row per group of `cols` channels.
        assert len(beats) == m * ceil_div(n, config.cols)
        assert all(0 <= b < 1 << res_layout(config).size for b in beats)
        assert codec.results(beats, m, n).tolist() == out.tolist()


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_beat_counts(name, rng):
    config = ROUND_TRIP[name]
    codec = StreamCodec(config)
    for m, k, n in [(1, 1, 1), (3, config.rows + 1, config.cols + 2), (7, 2 * config.rows, 5)]:
        extra = {}
        if config.requant:
            extra = {"bias": np.zeros(n, int), "m0": np.zeros(n, int),
                     "shift": np.zeros(n, int)}
        gemm = Gemm(rng.integers(0, 2, size=(m, k)), rng.integers(0, 2, size=(k, n)), **extra)
        assert gemm.shape == (m, k, n)
        chunks = ceil_div(k, config.rows)
        assert len(codec.activations(gemm)) == m * chunks
        assert len(codec.weights(gemm)) == n * chunks
        if config.requant:
            assert len(codec.params(gemm)) == n
        order = codec.result_order(m, n)
        assert len(order) == m * ceil_div(n, config.cols)
        assert sorted(order) == sorted((r, n0) for r in range(m)
                                       for n0 in range(0, n, config.cols))


def test_result_beats_match_amaranth_packing(rng):
    config = ArrayConfig(rows=2, cols=3, out_bits=5)
    codec = StreamCodec(config)
    out = rng.integers(-16, 16, size=(4, 3))
    assert codec.expected_beats(out) == [res_layout(config).const(row.tolist()).as_bits()
                                         for row in out]
