"""The small trained networks that tests/test_nets_pe_modes.py runs on the RTL, one per PE mode.

``python -m tests.support.lowbit_nets [--out DIR]`` (needs the ``[train]`` extra) trains and
deploys them with the study's own code (:func:`nets.study.run_study`, seed 0, epochs scaled
by :data:`EPOCHS_SCALE`) and writes each integer graph with :func:`nets.save_graph`, plus
``manifest.json``: per graph, the study's record of it (integer accuracy on the digits test
split, PE modes, cycles per image). The files are committed under ``tests/data/nets/``, so
that the suite runs fixed trained networks without JAX and without training.

=====================  ==============================================================
file                   network
=====================  ==============================================================
``mac8.npz``           the study's CNN, PTQ int8 (per-channel weights): mac, 8 bits
``mac4.npz``           the CNN, PTQ with 4-bit weights and activations and a 4-bit input
                       (``nets.methods.ptq(..., input_bits=4)``): every operand 4 bits
``xnor.npz``           BinaryNet's CNN: bit-serial first layer (8-bit input planes, ±1
                       weights, thresholds), xnor hidden layers (thresholds), xnor logits
``bitserial.npz``      DoReFa-Net's CNN, 2-bit weights and activations: bit-serial layers
=====================  ==============================================================
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["EPOCHS_SCALE", "NETWORKS", "default_dir", "main", "make"]

#: The study's epochs times this: short, the networks only need to be trained and small.
EPOCHS_SCALE = 0.25
#: file stem -> the study point that makes it (``input_bits``: mac4's extra knob).
NETWORKS = {
    "mac8": dict(method="ptq", net="cnn", w_bits=8, a_bits=8, granularity="channel",
                 calibration="minmax"),
    "mac4": dict(method="ptq", net="cnn", w_bits=4, a_bits=4, granularity="channel",
                 calibration="minmax", input_bits=4),
    "xnor": dict(method="binarynet", net="cnn", w_bits=1, a_bits=1),
    "bitserial": dict(method="dorefa", net="cnn", w_bits=2, a_bits=2),
}


def default_dir():
    """``tests/data/nets`` of this checkout."""
    return Path(__file__).resolve().parents[1] / "data" / "nets"


def _mac4(knobs, cache):
    """PTQ with a 4-bit input: no study point, so the study's context and steps by hand."""
    from nets import methods as mt
    from nets.arch import NETS
    from nets.export import to_graph
    from nets.study import _Context, cycles_per_image, integer_accuracy

    ctx = _Context(Path(cache), 0, EPOCHS_SCALE, (8, 8, "ws"))
    params, state = ctx.float_net(knobs["net"])
    d = ctx.data
    result = mt.ptq(NETS[knobs["net"]], params, state, d.x_calibration, w_bits=knobs["w_bits"],
                    a_bits=knobs["a_bits"], granularity=knobs["granularity"],
                    calibration=knobs["calibration"], input_bits=knobs["input_bits"])
    graph = to_graph(result.plan)
    cycles, macs = cycles_per_image(result.plan, ctx.engine)
    record = dict(knobs, accuracy=integer_accuracy(graph, d.x_test, d.y_test),
                  pe_modes=list(result.plan.pe_modes), cycles_per_image=cycles,
                  macs_per_image=macs, epochs_scale=EPOCHS_SCALE, seed=0)
    return graph, record


def make(out=None, cache=None):
    """Train, deploy and write the networks to ``out`` (default :func:`default_dir`)."""
    from nets import save_graph
    from nets.study import run_study

    out = Path(out or default_dir())
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(cache or tmp)
        for stem, knobs in NETWORKS.items():
            if "input_bits" in knobs:
                graph, record = _mac4(knobs, cache)
                save_graph(graph, out / f"{stem}.npz")
            else:
                graphs = cache / "graphs_out"
                (record,) = run_study([knobs], cache=cache, epochs_scale=EPOCHS_SCALE,
                                      progress=False, graphs=graphs)
                from nets.study import graph_name
                shutil.copyfile(graphs / f"{graph_name(record)}.npz", out / f"{stem}.npz")
            manifest[stem] = {k: record[k] for k in (
                "method", "net", "w_bits", "a_bits", "accuracy", "pe_modes",
                "cycles_per_image", "macs_per_image", "epochs_scale", "seed")
                if k in record}
            manifest[stem].update({k: v for k, v in knobs.items() if k not in manifest[stem]})
            print(f"{stem}: {manifest[stem]}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.support.lowbit_nets",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="where to write them (default tests/data/nets)")
    parser.add_argument("--cache", help="the study's cache (default: a temporary one)")
    args = parser.parse_args(argv)
    make(args.out, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
