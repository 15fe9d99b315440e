"""An int8 PTQ export written as .tflite reads back identically and runs in LiteRT's
reference kernels exactly as the golden executor runs the graph."""

import importlib.util

import numpy as np
import pytest

import golden

jax = pytest.importorskip("jax")
pytest.importorskip("sklearn")
if importlib.util.find_spec("nets.tflite_write") is None:
    pytest.skip("the .tflite writer (nets.tflite_write) is not here yet", allow_module_level=True)
interpreter = pytest.importorskip("ai_edge_litert.interpreter")


@pytest.mark.parametrize("name", ["mlp", "cnn", "dws"])
def test_int8_export_runs_in_litert_exactly(name):
    import nets
    from nets.arch import NETS
    from nets.data import load_digits
    from nets.export import to_graph
    from nets.methods import ptq
    from nets.train import init
    d = load_digits()
    net = NETS[name]
    # An untrained network: the check is the arithmetic of the export, not its accuracy.
    params, state = init(net, jax.random.PRNGKey(1))
    plan = ptq(net, params, state, d.x_calibration, w_bits=8, a_bits=8).plan
    graph = to_graph(plan)
    blob = nets.tflite_bytes(graph)
    again = nets.read_tflite(blob)
    xq = golden.quantize(d.x_test, np.float32(plan.input.scale), plan.input.zero_point)
    logits = graph.run(xq)
    assert np.array_equal(again.run(xq), logits)
    lite = interpreter.Interpreter(
        model_content=blob,
        experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_REF)
    lite.allocate_tensors()
    src, dst = lite.get_input_details()[0]["index"], lite.get_output_details()[0]["index"]
    for i in range(0, len(xq), 7):
        lite.set_tensor(src, xq[i:i + 1])
        lite.invoke()
        assert np.array_equal(lite.get_tensor(dst)[0], logits[i]), f"image {i}"


def test_narrow_codes_are_not_written():
    import nets
    from nets.arch import NETS
    from nets.data import load_digits
    from nets.export import to_graph
    from nets.methods import ptq
    from nets.train import init
    d = load_digits()
    params, state = init(NETS["mlp"], jax.random.PRNGKey(2))
    graph = to_graph(ptq(NETS["mlp"], params, state, d.x_calibration, w_bits=4, a_bits=4).plan)
    with pytest.raises(nets.ModelError, match=r"^tensor 2 \('layer0/weights'\) holds 4-bit "
                                              r"codes in int8, which TFLite cannot express; "
                                              r"only full-width tensors can be written$"):
        nets.tflite_bytes(graph)
