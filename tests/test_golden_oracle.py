"""The golden model reproduces TensorFlow Lite's int8 CONV_2D outputs bit for bit.

The oracle (``shared/oracle/tflite_conv_int8.npz``, see its README) holds 40 convolutions
run by the TFLite interpreter's reference kernels. Set ``QMAC_SHARED`` to point at another
``shared`` folder.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import golden

SHARED = Path(os.environ.get("QMAC_SHARED", Path(__file__).parents[1].parent / "shared"))
ORACLE = SHARED / "oracle" / "tflite_conv_int8.npz"
CASES = [f"case{i:03d}" for i in range(40)]

needs_oracle = pytest.mark.skipif(
    not ORACLE.is_file(), reason=f"TFLite oracle not found at {ORACLE} (set QMAC_SHARED)")


@pytest.fixture(scope="module")
def oracle():
    with np.load(ORACLE) as archive:
        yield {key: archive[key] for key in archive.files}


def load_case(oracle, case):
    c = {key[len(case) + 1:]: value for key, value in oracle.items()
         if key.startswith(case + "_")}
    c["meta"] = json.loads(str(c["meta"]))
    return c


def quantization_kwargs(c):
    return dict(x_scale=c["x_scale"], x_zero_point=c["x_zp"], w_scale=c["w_scale"],
                w_zero_point=c["w_zp"], y_scale=c["y_scale"], y_zero_point=c["y_zp"],
                activation=c["meta"]["activation"])


@needs_oracle
def test_oracle_holds_40_cases(oracle):
    assert sorted({key.split("_")[0] for key in oracle}) == CASES


@needs_oracle
@pytest.mark.parametrize("case", CASES)
def test_quantized_conv2d_matches_tflite(oracle, case):
    c = load_case(oracle, case)
    meta = c["meta"]
    assert c["x"].shape == (1, meta["h"], meta["w"], meta["cin"])
    assert c["w"].shape == (meta["cout"], meta["kernel"], meta["kernel"], meta["cin"])
    y = golden.quantized_conv2d(c["x"], c["w"], c["b"], stride=meta["stride"],
                                padding=meta["padding"], **quantization_kwargs(c))
    assert y.dtype == np.int8
    assert y.shape == c["y"].shape
    mismatches = np.argwhere(y != c["y"])
    assert mismatches.size == 0, (
        f"{len(mismatches)} of {y.size} outputs differ, first at {tuple(mismatches[0])}: "
        f"golden {y[tuple(mismatches[0])]}, TFLite {c['y'][tuple(mismatches[0])]}")


def _one_by_one_cases():
    if not ORACLE.is_file():
        return []
    with np.load(ORACLE) as archive:
        return [case for case in CASES
                if json.loads(str(archive[case + "_meta"]))["kernel"] == 1]


@needs_oracle
@pytest.mark.parametrize("case", _one_by_one_cases())
def test_two_step_fully_connected_matches_tflite_on_1x1_kernels(oracle, case):
    # A 1x1 CONV_2D is a fully connected layer with CONV_2D's two-step rounding; the
    # reference FULLY_CONNECTED rounds in double instead (tests/test_nets_litert.py).
    c = load_case(oracle, case)
    meta = c["meta"]
    s = meta["stride"]
    # A 1x1 kernel never needs padding: SAME and VALID both give ceil(size / s) outputs,
    # the inputs at rows and columns 0, s, 2s, ...
    x = c["x"][:, ::s, ::s, :]
    n, oh, ow, cin = x.shape
    assert (oh, ow) == (-(-meta["h"] // s), -(-meta["w"] // s))
    w = c["w"].reshape(meta["cout"], cin)
    y = golden.quantized_fully_connected_two_step(x.reshape(n * oh * ow, cin), w, c["b"],
                                                  **quantization_kwargs(c))
    assert y.dtype == np.int8
    assert y.shape == (n * oh * ow, meta["cout"])
    np.testing.assert_array_equal(y.reshape(c["y"].shape), c["y"])
