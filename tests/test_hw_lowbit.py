"""The xnor and bit-serial engines in Amaranth's simulator against the golden model.

Named cases of the low-bit PE modes, in both dataflows, under random stalls and with
random padding past K in every operand beat: K below, at and over a PE word and a beat;
all-ones and all-zeros words; bit-serial GEMMs of 1 plane and of the most planes; the
three output stages; commands with bit planes out of range. Results are compared with
golden (``gemm_jobs.expected_output``) and cycle counts with the cycle model.
"""

import numpy as np
import pytest

from hw.beats import Gemm, StreamCodec
from hw.config import ArrayConfig
from sim.engine_model import run_patterns
from tests.support.engine_sim import StreamPatterns, expected_output, random_gemm, run_engine
from tests.test_hw_engine import check_refused

BOTH = pytest.mark.parametrize("dataflow", ["ws", "os"])
LIMITS = {"max_m": 24, "max_n": 9}


def xnor(rows, cols, dataflow, pack, **fields):
    return ArrayConfig(rows=rows, cols=cols, dataflow=dataflow, pe_mode="xnor", pack=pack,
                       **{"max_k": 12 * pack, **LIMITS, **fields})


def bitserial(rows, cols, dataflow, pack, **fields):
    return ArrayConfig(rows=rows, cols=cols, dataflow=dataflow, pe_mode="bitserial", pack=pack,
                       **{"max_k": 6 * pack, **LIMITS, **fields})


def check(config, rng, gemms, stall_prob=0.3):
    """Run ``gemms`` back to back; outputs must be golden's, cycles the model's."""
    patterns = StreamPatterns(int(rng.integers(1 << 32)), stall_prob, cycles=60000)
    outputs, records = run_engine(config, gemms, patterns,
                                  padding_rng=np.random.default_rng(rng.integers(1 << 32)))
    for i, (gemm, out) in enumerate(zip(gemms, outputs, strict=True)):
        expected = expected_output(config, gemm)
        bad = np.argwhere(out != expected)
        assert not bad.size, (f"GEMM {i} {gemm.shape}: {len(bad)} wrong, first at "
                              f"{tuple(bad[0])}: got {out[tuple(bad[0])]}, golden "
                              f"{expected[tuple(bad[0])]}")
    codec = StreamCodec(config)
    model = run_patterns(config, [codec.model_shape(g) for g in gemms], patterns.valid,
                         patterns.ready)
    assert [r["cycles"] for r in records] == [r["cycles"] for r in model]
    return outputs


# --- xnor -------------------------------------------------------------------------------------

@BOTH
@pytest.mark.parametrize("pack", [1, 4, 8])
def test_xnor_k_around_words_and_beats(dataflow, pack, rng):
    config = xnor(2, 3, dataflow, pack)
    beat = config.chunk
    ks = sorted({1, max(1, pack - 1), pack, pack + 1, beat - 1 or 1, beat, beat + 1,
                 config.max_k})
    check(config, rng, [random_gemm(config, rng, 5, k, 4) for k in ks])


@BOTH
def test_xnor_all_ones_and_all_zeros_words(dataflow, rng):
    config = xnor(3, 2, dataflow, 4, requant=False)
    k, ones = 21, np.ones((4, 21), np.int64)
    gemms = [Gemm(ones, ones[:, :3].T.repeat(7, axis=0)[:k]),
             Gemm(-ones, -ones[:, :3].T.repeat(7, axis=0)[:k]),
             Gemm(ones, -ones[:, :3].T.repeat(7, axis=0)[:k])]
    outputs = check(config, rng, gemms)
    # Independently of golden: every dot is +K, +K and -K.
    assert [int(np.unique(out)[0]) for out in outputs] == [k, k, -k]
    assert all(len(np.unique(out)) == 1 for out in outputs)


@BOTH
def test_xnor_threshold_bits(dataflow, rng):
    config = xnor(2, 2, dataflow, 8, threshold=True)
    gemms = [random_gemm(config, rng, 7, k, 5) for k in (1, 9, 40, 96)]
    check(config, rng, gemms)


@BOTH
def test_xnor_raw_accumulators_wrap(dataflow, rng):
    # 6-bit accumulators: dots of 40 bits leave -32..31 and wrap.
    config = xnor(2, 2, dataflow, 4, requant=False, acc_bits=6)
    gemm = Gemm(np.ones((3, 40), np.int64), np.tile([1, -1, 1], (40, 1)))
    out, = check(config, rng, [gemm])
    assert out[0].tolist() == [40 - 64, -40 + 64, 40 - 64]


def test_xnor_1x1_one_bit_words(rng):
    config = xnor(1, 1, "ws", 1)
    check(config, rng, [random_gemm(config, rng, 3, k, 2) for k in (1, 2, 5)], stall_prob=0.5)


# --- bit-serial ---------------------------------------------------------------------------------

@BOTH
@pytest.mark.parametrize(("a_signed", "w_signed"), [(True, True), (False, True), (False, False)])
def test_bitserial_one_and_most_planes(dataflow, a_signed, w_signed, rng):
    config = bitserial(2, 3, dataflow, 2, a_bits=4, w_bits=3, a_signed=a_signed,
                       w_signed=w_signed)
    gemms = [random_gemm(config, rng, 5, k, 4, extremes=True, planes=planes)
             for planes, k in (((1, 1), 7), ((4, 3), 7), ((1, 3), 12), ((4, 1), 3), ((2, 2), 1))]
    check(config, rng, gemms)


@BOTH
def test_bitserial_k_not_a_multiple_of_the_word(dataflow, rng):
    config = bitserial(3, 2, dataflow, 4, a_bits=3, w_bits=3)
    gemms = [random_gemm(config, rng, 4, k, 3, planes=(3, 2)) for k in (1, 3, 5, 13, 23)]
    check(config, rng, gemms)


@BOTH
def test_bitserial_ternary_weights(dataflow, rng):
    # TWN's codes as signed 2-bit weights: -1, 0, +1 (golden.ternarize's output).
    config = bitserial(2, 2, dataflow, 4, a_bits=8, a_signed=False, w_bits=2)
    a = rng.integers(0, 256, size=(6, 17))
    w = rng.choice([-1, 0, 1], size=(17, 3))
    check(config, rng, [Gemm(a, w, a_planes=8, w_planes=2,
                             **_requant_like(config, rng, 3))])


def _requant_like(config, rng, n):
    """Requantization parameters that spread the outputs (multiplier 2**-8, bias 0)."""
    return dict(bias=np.zeros(n, np.int64), m0=np.full(n, 1 << 30), shift=np.full(n, -7),
                out_zero_point=0, act_min=-128, act_max=127)


@BOTH
def test_bitserial_threshold_and_raw(dataflow, rng):
    for stage in ({"threshold": True}, {"requant": False, "acc_bits": 10}):
        config = bitserial(2, 2, dataflow, 2, a_bits=3, w_bits=3, **stage)
        check(config, rng, [random_gemm(config, rng, 6, 11, 3, extremes=True, planes=p)
                            for p in ((3, 3), (1, 2))])


def test_bitserial_one_bit_planes_1x1(rng):
    config = bitserial(1, 1, "os", 1, a_bits=1, w_bits=1, a_signed=False)
    check(config, rng, [random_gemm(config, rng, 3, k, 2, planes=(1, 1)) for k in (1, 4)],
          stall_prob=0.5)


@BOTH
def test_bitserial_refuses_planes_out_of_range(dataflow, rng):
    # a_planes and w_planes take 3 bits (1..5, 1..4): 0 and values past the widths refused.
    config = bitserial(2, 2, dataflow, 2, a_bits=5, w_bits=4, max_k=12, max_n=6)
    check_refused(config, rng, [{"a_planes": 0}, {"w_planes": 0}, {"a_planes": 6},
                                {"w_planes": 5}, {"a_planes": 7, "w_planes": 7}])
