"""A real TFLite model end to end in golden: ``shared/models/digits_cnn.tflite``.

The npz beside it holds what TensorFlow Lite's interpreter (reference kernels) computed:
``out_ref`` for the 360 test images and every activation tensor of the first 8 (see
``shared/models/README.md``). Golden must reproduce all of it exactly. A missing shared
file fails these tests (the ``shared_path`` fixture of conftest.py).
"""

import json
import re

import numpy as np
import pytest

import golden
import nets
from tests.support.nets import assert_same_graph, litert_tensors


@pytest.fixture(scope="module")
def graph(shared_path):
    return nets.load_tflite(shared_path("models/digits_cnn.tflite"))


@pytest.fixture(scope="module")
def reference(shared_path):
    with np.load(shared_path("models/digits_cnn.npz")) as archive:
        data = {key: archive[key] for key in archive.files}
    data["meta"] = json.loads(str(data.pop("meta_json")))
    return data


@pytest.fixture(scope="module")
def golden_run(graph, reference):
    return nets.run_graph(graph, reference["x_test"], keep_all=True)


def test_import_reads_the_ops_of_the_readme(graph):
    assert [op.kind for op in graph.ops] == ["CONV_2D", "CONV_2D", "CONV_2D", "RESHAPE",
                                             "FULLY_CONNECTED"]
    assert [op.options.get("activation") for op in graph.ops] == ["relu", "relu6", "relu",
                                                                  None, "linear"]
    assert [op.options.get("stride") for op in graph.ops[:3]] == [(1, 1), (2, 2), (1, 1)]
    assert [op.options.get("padding") for op in graph.ops[:3]] == ["SAME", "SAME", "VALID"]
    fc_weights = graph.tensors[graph.ops[4].inputs[1]]
    assert fc_weights.shape == (10, 128) and fc_weights.quant.scale.size == 10


def test_quantization_matches_the_interpreters(graph, reference):
    for key, meta in reference["meta"]["intermediate_keys"].items():
        tensor = graph.tensors[meta["index"]]
        assert tensor.name == meta["name"], key
        assert float(tensor.quant.scale[0]) == pytest.approx(meta["scale"], rel=1e-7), key
        assert int(tensor.quant.zero_point[0]) == meta["zero_point"], key


def test_golden_outputs_equal_out_ref(golden_run, reference):
    out, _ = golden_run
    assert out.dtype == np.int8 and out.shape == (360, 10)
    equal = int(np.count_nonzero(out == reference["out_ref"]))
    assert equal == 3600, f"{3600 - equal} of 3600 output elements differ from out_ref"


def test_golden_accuracy_is_the_interpreters(golden_run, reference):
    out, _ = golden_run
    accuracy = float(np.mean(np.argmax(out, axis=1) == reference["y_test"]))
    assert accuracy == float(reference["int8_accuracy_ref"])


def test_every_stored_intermediate_tensor(golden_run, reference):
    _, tensors = golden_run
    keys = [k for k in reference if re.fullmatch(r"t\d+_.*", k)]
    assert len(keys) == 6
    for key in keys:
        index = int(key[1:].split("_")[0])
        want = reference[key]
        first = want.shape[0]
        got = tensors[index][:first].reshape(want.shape)
        np.testing.assert_array_equal(got, want, err_msg=key)


def test_two_step_rounding_in_the_dense_layer_would_differ(graph, golden_run, reference):
    """FULLY_CONNECTED's double-precision requantization matters on this very model."""
    _, tensors = golden_run
    fc = graph.ops[4]
    w, bias = (graph.tensors[i] for i in fc.inputs[1:])
    x_t, y_t = graph.tensors[fc.inputs[0]], graph.tensors[fc.outputs[0]]
    two_step = golden.quantized_fully_connected_two_step(
        tensors[fc.inputs[0]], w.data, bias.data, x_scale=x_t.quant.scale[0],
        x_zero_point=int(x_t.quant.zero_point[0]), w_scale=w.quant.scale, w_zero_point=0,
        y_scale=y_t.quant.scale[0], y_zero_point=int(y_t.quant.zero_point[0]))
    assert np.count_nonzero(two_step != reference["out_ref"]) > 0


def test_rewritten_model_runs_the_same_in_litert(graph, reference):
    model = nets.tflite_bytes(graph)
    assert_same_graph(nets.read_tflite(model, name=graph.name), graph)
    # The file's RESHAPE names the batch (its shape input is [1, 128]): one image at a time.
    for i in range(0, 360, 36):
        litert = litert_tensors(model, [reference["x_test"][i:i + 1]], graph)
        np.testing.assert_array_equal(litert[graph.outputs[0]], reference["out_ref"][i:i + 1])


def test_missing_shared_file_fails_naming_it(monkeypatch, tmp_path, shared_path):
    monkeypatch.setenv("QMAC_SHARED", str(tmp_path))
    with pytest.raises(pytest.fail.Exception,
                       match=rf"^shared data missing: models/gone\.tflite is expected at "
                             rf"{re.escape(str(tmp_path))}/models/gone\.tflite "):
        shared_path("models/gone.tflite")
