"""Model import and inference refuse what qmac cannot run with one-line errors.

Bad files (missing, not TFLite, truncated, float, unsupported ops or tensor types, ops
whose tensors TFLite's kernels refuse) and bad inference inputs (dtype, shape, batch,
non-finite floats); each message is matched whole with an anchored regex.
"""

import re

import numpy as np
import pytest
from tflite.TensorType import TensorType

import nets
import nets.tflite_write
from nets import ModelError, Quant
from tests.support.nets import GraphBuilder, act_quant, assert_same_graph, random_conv_2d

SUPPORTED = re.escape(", ".join(nets.SUPPORTED_OPS))


def conv_graph(rng=None, float_model=False):
    """One CONV_2D: int8 (or, with ``float_model``, float32 throughout)."""
    builder = GraphBuilder()
    if float_model:
        x = builder.input((1, 4, 4, 2), "float32")
        w = builder.tensor((3, 1, 1, 2), "float32", None, np.ones((3, 1, 1, 2), np.float32))
        b = builder.tensor((3,), "float32", None, np.zeros(3, np.float32))
        y = builder.tensor((1, 4, 4, 3), "float32")
        builder.output(builder.op("CONV_2D", (x, w, b), (y,), stride=(1, 1), padding="SAME",
                                  dilation=(1, 1), activation="linear"))
    else:
        builder.output(random_conv_2d(rng or np.random.default_rng(0), builder))
    return builder


def with_op(builder, kind, **options):
    """Append a one-input ``kind`` op on the builder's last output (same shape, int8)."""
    source = builder.outputs[-1]
    out = builder.tensor(builder.shape(source), quant=builder.quant(source))
    builder.outputs[-1] = builder.op(kind, (source,), (out,), **options)
    return builder


def write(tmp_path, graph, name="model.tflite"):
    path = tmp_path / name
    nets.save_tflite(graph, path)
    return path


def check(exc, pattern, call):
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)


def test_model_error_is_a_value_error():
    assert issubclass(ModelError, ValueError)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.tflite"
    check(FileNotFoundError, rf"^model file {re.escape(repr(str(missing)))} does not exist$",
          lambda: nets.load_tflite(missing))


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello world")
    check(ModelError, r"^notes\.txt is not a TFLite model: no 'TFL3' flatbuffer identifier in "
                      r"its first 8 bytes \(11 bytes in all\)$", lambda: nets.load_tflite(path))


@pytest.mark.parametrize("keep", [0.001, 0.3, 0.6, 0.9])
def test_truncated_file(tmp_path, keep):
    data = nets.tflite_bytes(conv_graph().graph())
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[:max(8, int(len(data) * keep))])
    check(ModelError, r"^cut\.tflite is not a valid TFLite flatbuffer \(truncated or corrupt\): "
                      r"\S.*$", lambda: nets.load_tflite(path))


def test_float_model(tmp_path):
    path = write(tmp_path, conv_graph(float_model=True).graph(), "float.tflite")
    check(ModelError, r"^float\.tflite is a float model: op 0 \(CONV_2D\) computes in float32; "
                      r"qmac runs full-integer models \(int8 activations and weights, as "
                      r"TFLiteConverter writes with a representative dataset and "
                      r"TFLITE_BUILTINS_INT8\)$", lambda: nets.load_tflite(path))


def test_every_unsupported_op_is_named_once(tmp_path, rng):
    builder = with_op(with_op(conv_graph(rng), "TANH"), "LOGISTIC")
    source = builder.outputs[-1]
    out = builder.tensor(builder.shape(source), quant=builder.quant(source))
    builder.outputs[-1] = builder.op("MUL", (source, source), (out,))
    path = write(tmp_path, builder.graph())
    check(ModelError, rf"^model\.tflite has ops qmac does not run: 1 \(TANH\), 2 \(LOGISTIC\), "
                      rf"3 \(MUL\); supported: {SUPPORTED}$", lambda: nets.load_tflite(path))


def test_unsupported_tensor_type(tmp_path, monkeypatch, rng):
    builder = GraphBuilder()
    x = builder.input((1, 4), "int16", act_quant(rng, "int16"))
    y = builder.tensor((1, 4), "int8", act_quant(rng))
    builder.output(builder.op("QUANTIZE", (x,), (y,)))
    # The graph cannot hold a float16 tensor; write its int16 input as one.
    monkeypatch.setitem(nets.tflite_write.DTYPE_TO_TENSOR_TYPE, "int16", TensorType.FLOAT16)
    path = write(tmp_path, builder.graph())
    check(ModelError, r"^model\.tflite: tensor 0 \('t0'\) has type FLOAT16; qmac reads INT8, "
                      r"UINT8, INT16, INT32, INT64, FLOAT32$", lambda: nets.load_tflite(path))


def _conv_with(rng, **changes):
    """The tensors of a random CONV_2D, one of them replaced (weights, output...)."""
    builder = conv_graph(rng)
    graph = builder.graph()
    op = graph.ops[0]
    tensors = list(graph.tensors)
    for role, replace in changes.items():
        index = {"x": op.inputs[0], "w": op.inputs[1], "y": op.outputs[0]}[role]
        tensors[index] = replace(tensors[index])
    return nets.Graph(tensors, graph.ops, graph.inputs, graph.outputs)


def _requant(tensor, **fields):
    quant = tensor.quant
    return nets.Tensor(tensor.index, tensor.name, tensor.shape, tensor.dtype,
                       Quant(fields.get("scale", quant.scale),
                             fields.get("zero_point", quant.zero_point),
                             fields.get("axis", quant.axis)), tensor.data)


@pytest.mark.parametrize(("pattern", "changes"), [
    (r"^model\.tflite: op 0 \(CONV_2D\) weights \(tensor \d+\) have zero point 3; they must be "
     r"symmetric \(zero point 0\)$",
     {"w": lambda t: _requant(t, scale=t.quant.scale[:1], zero_point=[3], axis=0)}),
    (r"^model\.tflite: op 0 \(CONV_2D\) weights \(tensor \d+\) have 2 scales along axis 0; "
     r"per-channel weights need one per output channel \(\d+\) along axis 0$",
     {"w": lambda t: nets.Tensor(t.index, t.name, (7,) + t.shape[1:], t.dtype,
                                 Quant([0.1, 0.2], [0, 0], 0),
                                 np.zeros((7,) + t.shape[1:], np.int8))}),
    (r"^model\.tflite: op 0 \(CONV_2D\) output \(tensor \d+\) is unquantized; it must be "
     r"quantized per tensor$",
     {"y": lambda t: nets.Tensor(t.index, t.name, t.shape, t.dtype)}),
    (r"^model\.tflite: op 0 \(CONV_2D\) input \(tensor 0\) is uint8; it must be int8$",
     {"x": lambda t: nets.Tensor(t.index, t.name, t.shape, "uint8", Quant(0.5, 128))}),
])
def test_conv_tensors_tflite_refuses(tmp_path, rng, pattern, changes):
    path = write(tmp_path, _conv_with(rng, **changes))
    check(ModelError, pattern, lambda: nets.load_tflite(path))


def test_concatenation_needs_one_quantization(tmp_path):
    builder = GraphBuilder()
    a = builder.input((1, 2), quant=Quant(0.5, 1))
    b = builder.input((1, 3), quant=Quant(0.25, 1))
    y = builder.tensor((1, 5), quant=Quant(0.5, 1))
    builder.output(builder.op("CONCATENATION", (a, b), (y,), axis=1, activation="linear"))
    path = write(tmp_path, builder.graph())
    check(ModelError, r"^model\.tflite: op 0 \(CONCATENATION\) input 1 \(tensor 1\) has scale "
                      r"0\.25 and zero point 1; TFLite's int8 kernel needs the output's "
                      r"\(0\.5, 1\)$", lambda: nets.load_tflite(path))


def test_softmax_needs_tflite_output_quantization(tmp_path):
    builder = GraphBuilder()
    x = builder.input((1, 4), quant=Quant(0.1, 0))
    y = builder.tensor((1, 4), quant=Quant(0.1, 0))
    builder.output(builder.op("SOFTMAX", (x,), (y,), beta=1.0))
    path = write(tmp_path, builder.graph())
    check(ModelError, r"^model\.tflite: op 0 \(SOFTMAX\) has output scale 0\.1\d* and zero "
                      r"point 0; an int8 softmax needs 1/256 and -128$",
          lambda: nets.load_tflite(path))


def test_writer_refuses_unknown_op():
    builder = GraphBuilder()
    x = builder.input((1, 4), quant=Quant(0.1, 0))
    builder.output(builder.op("FROBNICATE", (x,), (x,)))
    check(ModelError, r"^op 0 \(FROBNICATE\) is not a TFLite builtin op; it cannot be written$",
          lambda: nets.tflite_bytes(builder.graph()))


def test_read_back_is_the_written_graph(rng):
    graph = conv_graph(rng).graph()
    assert_same_graph(nets.read_tflite(nets.tflite_bytes(graph), name="random"), graph)


# --- inference inputs -----------------------------------------------------------------------

@pytest.fixture
def conv(rng):
    return conv_graph(rng).graph("conv")


def _input_shape(graph):
    return graph.tensors[graph.inputs[0]].shape


def test_input_of_the_wrong_dtype(conv):
    shape = _input_shape(conv)
    dims = ", ".join(map(str, shape[1:]))
    check(ModelError, rf"^conv input 0 \('t0'\) must be int8 of shape \(B, {dims}\), not "
                      rf"float64$", lambda: nets.run_graph(conv, np.zeros(shape)))


def test_input_of_the_wrong_shape(conv):
    shape = _input_shape(conv)
    dims = ", ".join(map(str, shape[1:]))
    bad = shape[:-1] + (shape[-1] + 1,)
    check(ModelError, rf"^conv input 0 \('t0'\) must have shape \(B, {dims}\) with B >= 1, not "
                      rf"{re.escape(str(bad))}$",
          lambda: nets.run_graph(conv, np.zeros(bad, np.int8)))
    check(ModelError, rf"^conv input 0 \('t0'\) must have shape \(B, {dims}\) with B >= 1, not "
                      rf"{re.escape(str((0,) + shape[1:]))}$",
          lambda: nets.run_graph(conv, np.zeros((0,) + shape[1:], np.int8)))


def test_wrong_number_of_inputs(conv):
    x = np.zeros(_input_shape(conv), np.int8)
    check(ModelError, r"^conv takes 1 inputs, not 2$", lambda: nets.run_graph(conv, [x, x]))


def test_non_finite_float_input():
    builder = GraphBuilder()
    x = builder.input((1, 3), "float32")
    y = builder.tensor((1, 3), quant=Quant(0.1, 0))
    builder.output(builder.op("QUANTIZE", (x,), (y,)))
    graph = builder.graph("q")
    check(ModelError, r"^q input 0 \('t0'\) holds nan; float inputs must be finite$",
          lambda: nets.run_graph(graph, np.array([[1, np.nan, 2]], np.float32)))


def test_batch_of_a_graph_that_does_not_keep_the_batch(rng):
    builder = GraphBuilder()
    x = builder.input((1, 4, 6), quant=act_quant(rng))
    w = builder.tensor((3, 6), "int8", Quant(0.01, 0), np.ones((3, 6), np.int8))
    y = builder.tensor((4, 3), quant=act_quant(rng))          # one row per x[0, i]
    builder.output(builder.op("FULLY_CONNECTED", (x, w), (y,), keep_num_dims=False,
                              activation="linear"))
    graph = builder.graph("rows")
    assert nets.run_graph(graph, np.zeros((1, 4, 6), np.int8)).shape == (4, 3)
    check(ModelError, r"^rows runs only the inputs' shapes of the file \(batch 1\), not batch 2: "
                      r"an op or a tensor of it does not keep the batch as its first axis$",
          lambda: nets.run_graph(graph, np.zeros((2, 4, 6), np.int8)))


def test_activation_zero_point_out_of_its_type(tmp_path, rng):
    graph = _conv_with(rng, y=lambda t: _requant(t, zero_point=[300]))
    path = write(tmp_path, graph)
    check(ModelError, r"^model\.tflite: op 0 \(CONV_2D\) output \(tensor \d+\) has zero point "
                      r"300; int8 allows -128\.\.127$", lambda: nets.load_tflite(path))


def test_op_whose_parameters_golden_refuses(rng):
    # A multiplier of about 2**50 needs a left shift past 30, which no int32 kernel has.
    graph = _conv_with(rng, y=lambda t: _requant(t, scale=[1e-20]))
    x = np.zeros(_input_shape(graph), np.int8)
    check(ModelError, r"^graph: op 0 \(CONV_2D\) cannot run: shift must hold integers in "
                      r"-31\.\.30, not \d+$", lambda: nets.run_graph(graph, x))
