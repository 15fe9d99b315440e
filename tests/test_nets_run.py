"""nets.run: digits_cnn through the engine (cycle model and RTL), its report, its errors."""

import json
import re

import numpy as np
import pytest

import golden
from hw.config import ArrayConfig
from nets import load_tflite
from nets.lower import plan_network
from nets.run import main, run_network
from sim.engine_model import gemm_cycles
from sim.perf import GAP_BETWEEN_GEMMS
from sim.perf import main as perf_main
from tests.support.nets import GraphBuilder, chain_case, random_inputs

ENGINE = ["--rows", "8", "--cols", "8", "--max-k", "288"]


@pytest.fixture(scope="module")
def digits(shared_path):
    """digits_cnn's graph and its npz (x_test, y_test, out_ref)."""
    model = shared_path("models/digits_cnn.tflite")
    data = shared_path("models/digits_cnn.npz")
    with np.load(data) as d:
        arrays = {key: d[key] for key in ("x_test", "y_test", "out_ref")}
    return model, data, load_tflite(model), arrays


def _cli(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_model_run_gives_the_interpreter_output_and_cycles(digits, capsys, tmp_path):
    model, data, graph, arrays = digits
    report = tmp_path / "run.json"
    code, out, _ = _cli([model, "--data", data, *ENGINE, "--json", report], capsys)
    assert code == 0, out
    doc = json.loads(report.read_text())
    layers = {r["index"]: r for r in doc["layers"]}
    assert [r["op"] for r in doc["layers"]] == ["CONV_2D", "CONV_2D", "CONV_2D", "RESHAPE",
                                                "FULLY_CONNECTED"]
    assert [(layers[i]["m"], layers[i]["k"], layers[i]["n"]) for i in (0, 1, 2, 4)] == [
        (64, 9, 16), (16, 144, 32), (4, 288, 32), (1, 128, 10)]
    # Convolutions requantize exactly as TFLite; the FC layer rounds in fixed point on the
    # engine, TFLite in double: count the elements that differ independently.
    assert all(layers[i]["tflite_mismatches"] == 0 and layers[i]["match"] for i in (0, 1, 2))
    _, values = graph.run(arrays["x_test"], keep_all=True)
    fc = graph.ops[4]
    w = graph.tensors[fc.inputs[1]]
    x_t, y_t = graph.tensors[fc.inputs[0]], graph.tensors[fc.outputs[0]]
    two_step = golden.quantized_fully_connected_two_step(
        values[fc.inputs[0]].reshape(len(arrays["x_test"]), -1), w.data,
        graph.tensors[fc.inputs[2]].data, x_scale=x_t.quant.scale[0],
        x_zero_point=int(x_t.quant.zero_point[0]), w_scale=w.quant.scale, w_zero_point=0,
        y_scale=y_t.quant.scale[0], y_zero_point=int(y_t.quant.zero_point[0]))
    differ = int(np.count_nonzero(two_step != arrays["out_ref"]))
    assert layers[4]["tflite_mismatches"] == differ
    assert layers[4]["match"] is (differ == 0)
    total = doc["total"]
    assert total["reference_elements"] == 3600
    assert total["reference_elements_equal"] == 3600 - differ
    assert total["accuracy"] == pytest.approx(
        np.mean(np.argmax(two_step, axis=1) == arrays["y_test"]))
    # Cycles of one inference: each command as the cycle model counts it, back to back.
    config = ArrayConfig(rows=8, cols=8, max_k=288)
    plans = plan_network(graph, config)
    for index, plan in plans.items():
        expected = sum(gemm_cycles(config, *shape) for shape in plan.command_shapes())
        assert layers[index]["model_cycles"] == expected + GAP_BETWEEN_GEMMS * (
            len(plan.commands) - 1)
    assert total["cycles"] == sum(layers[i]["model_cycles"] for i in plans) + (
        GAP_BETWEEN_GEMMS * (len(plans) - 1))
    assert f"cycles per inference: {total['cycles']:,}" in out


def test_raw_engine_with_host_requantization_equals_out_ref(digits):
    _, _, graph, arrays = digits
    run = run_network(graph, ArrayConfig(rows=8, cols=8, max_k=288, requant=False),
                      arrays["x_test"], sim="model")
    np.testing.assert_array_equal(run.outputs, arrays["out_ref"])
    assert all(r.tflite_mismatches == 0 for r in run.layers if r.on_engine)


def test_golden_run_is_the_reference_and_counts_no_cycles(digits, capsys):
    model, data, _, arrays = digits
    code, out, _ = _cli([model, "--data", data, "--sim", "golden", *ENGINE], capsys)
    assert code == 0
    assert "equal to out_ref: 3600/3600 elements (0 differ)" in out
    correct = int(np.count_nonzero(np.argmax(arrays["out_ref"], 1) == arrays["y_test"]))
    assert f"accuracy: {correct / 360:.4f} ({correct}/360)" in out
    assert "cycles per inference" not in out


@pytest.mark.rtl
@pytest.mark.parametrize(("sim", "fields"), [
    ("verilator", []),
    ("icarus", ["--dataflow", "os", "--no-requant"]),
])
def test_digits_cnn_on_the_rtl_is_bit_and_cycle_exact(digits, capsys, tmp_path, sim, fields):
    model, data, _, _ = digits
    report = tmp_path / "rtl.json"
    code, out, _ = _cli([model, "--data", data, "--images", 2, "--rtl-images", 2, "--sim", sim,
                         *ENGINE, *fields, "--json", report], capsys)
    assert code == 0, out
    doc = json.loads(report.read_text())
    assert doc["rtl_images"] == 2
    engine = [r for r in doc["layers"] if r["m"] is not None]
    assert len(engine) == 4
    for r in engine:
        assert r["rtl_match"] is True
        assert r["rtl_cycles"] == r["model_cycles"]
    assert doc["total"]["rtl_errors"] == []


@pytest.mark.parametrize(("argv", "message"), [
    (["--rows", "8", "--cols", "8"],
     r"op 2 \(CONV_2D\) needs K = 288, over the engine's max_k 256; build it with "
     r"--max-k 288 or more, or without an output stage \(--no-requant: the host adds the "
     r"partial sums of K split into commands\)"),
    ([*ENGINE, "--pe-mode", "xnor"], r"int8 TFLite layers need an engine with pe_mode 'mac' "
                                     r"\(not 'xnor'\), signed activations of at least 8 "
                                     r"bits \(not a_bits 1, a_signed True\), signed weights of "
                                     r"at least 8 bits \(not w_bits 1, w_signed True\)"),
    ([*ENGINE, "--images", "361"], r"--images must be at most the 360 images of .*, not 361"),
])
def test_bad_runs_are_one_line_errors(digits, capsys, argv, message):
    model, data, _, _ = digits
    with pytest.raises(SystemExit) as exit_info:
        main([str(model), "--data", str(data), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert re.match(rf"^python -m nets\.run: error: {message}$", err.strip()), err


def test_a_missing_model_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "none.tflite")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m nets.run: error: ") and "none.tflite" in err
    assert len(err.splitlines()) == 1


def test_data_without_inputs_is_refused(digits, tmp_path, capsys):
    model = digits[0]
    empty = tmp_path / "empty.npz"
    np.savez(empty, y_test=np.zeros(3))
    with pytest.raises(SystemExit):
        main([str(model), "--data", str(empty), *ENGINE])
    assert re.search(r"has no x_test array \(it has y_test\)$", capsys.readouterr().err.strip())


def test_sim_perf_takes_a_tflite_models_commands(digits, capsys, tmp_path):
    model, _, graph, _ = digits
    report = tmp_path / "perf.json"
    assert perf_main(["--tflite", str(model), *ENGINE, "--json", str(report)]) == 0
    layers = json.loads(report.read_text())["layers"]
    assert [(r["name"], r["M"], r["K"], r["N"]) for r in layers] == [
        ("0:CONV_2D", 64, 9, 16), ("1:CONV_2D", 16, 144, 32), ("2:CONV_2D", 4, 288, 32),
        ("4:FULLY_CONNECTED", 1, 128, 10)]
    run = run_network(graph, ArrayConfig(rows=8, cols=8, max_k=288), np.zeros(
        (1, 8, 8, 1), np.int8))
    by_index = {r.index: r.model_cycles for r in run.layers if r.on_engine}
    assert [r["cycles"] for r in layers] == [by_index[i] for i in (0, 1, 2, 4)]


def _chain_network(rng):
    builder = GraphBuilder()
    builder.output(chain_case(rng, builder))
    return builder.graph()


def test_random_networks_on_the_engine_agree_with_golden(rng):
    """Random networks (QUANTIZE, conv, depthwise, ADD, pool, MEAN, FC, SOFTMAX): on a raw
    engine every engine layer equals golden's TFLite output, and so does the network; on a
    requantizing engine the convolutions do."""
    for _ in range(8):
        graph = _chain_network(rng)
        x = random_inputs(rng, graph, batch=int(rng.integers(1, 4)))[0]
        raw = ArrayConfig(rows=int(rng.integers(1, 9)), cols=int(rng.integers(1, 9)),
                          dataflow=str(rng.choice(["ws", "os"])), requant=False,
                          max_n=int(rng.integers(1, 9)))
        run = run_network(graph, raw, x)
        assert all(r.tflite_mismatches == 0 for r in run.layers if r.on_engine)
        np.testing.assert_array_equal(run.outputs, graph.run(x))
        run = run_network(graph, raw.replace(requant=True), x)
        assert all(r.tflite_mismatches == 0 for r in run.layers
                   if r.on_engine and r.op != "FULLY_CONNECTED")


@pytest.mark.rtl
def test_a_random_network_with_depthwise_layers_on_the_rtl(seed):
    rng = np.random.default_rng(seed)
    graph = _chain_network(rng)
    x = random_inputs(rng, graph, batch=1)[0]
    config = ArrayConfig(rows=8, cols=8, max_k=288, dataflow="os", requant=False)
    run = run_network(graph, config, x, sim="icarus", seed=seed)
    assert run.rtl_errors == []
    engine = [r for r in run.layers if r.on_engine]
    assert [r.op for r in engine] == ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]
    assert all(r.rtl_match and r.rtl_cycles == r.model_cycles for r in engine)
    np.testing.assert_array_equal(run.outputs, graph.run(x))
