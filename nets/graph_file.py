"""An integer graph saved as one ``.npz`` file, and read back identically (no pickle, no JAX).

TFLite cannot hold the graphs that qmac's study deploys (``QMAC_*`` ops, narrow codes), so
:func:`save_graph` writes any :class:`~nets.graph.Graph` as a numpy archive:

* ``graph``: a JSON text (a 0-d unicode array) with the format version, the graph's name,
  inputs and outputs, every tensor's index, name, shape, dtype, quantization axis and
  ``bits``, and every op's kind, inputs, outputs and options (tuples written as lists);
* ``data_<i>``: tensor ``i``'s constant value, in its dtype;
* ``scale_<i>``, ``zero_point_<i>``: tensor ``i``'s quantization (float32 and int64 arrays,
  so that scales round-trip bit for bit).

:func:`load_graph` reads it with ``allow_pickle=False`` and gives a graph equal to the one
saved: same tensors (values, dtypes, scales, zero points), same ops, options with tuples
again (the form :mod:`nets.graph` documents).
"""

import json
from pathlib import Path

import numpy as np

from .errors import ModelError
from .graph import Graph, Op, Quant, Tensor

__all__ = ["GRAPH_FILE_VERSION", "load_graph", "save_graph"]

#: Version of the archive layout; :func:`load_graph` refuses others.
GRAPH_FILE_VERSION = 1


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def save_graph(graph: Graph, path):
    """Write ``graph`` to ``path`` (an ``.npz`` archive, see the module docstring)."""
    arrays = {}
    tensors = []
    for t in graph.tensors:
        entry = {"index": t.index, "name": t.name, "shape": list(t.shape), "dtype": t.dtype}
        if t.quant is not None:
            entry["quant"] = {"axis": int(t.quant.axis), "bits": t.quant.bits}
            arrays[f"scale_{t.index}"] = np.asarray(t.quant.scale, np.float32)
            arrays[f"zero_point_{t.index}"] = np.asarray(t.quant.zero_point, np.int64)
        if t.data is not None:
            arrays[f"data_{t.index}"] = np.asarray(t.data)
        tensors.append(entry)
    ops = [{"kind": op.kind, "inputs": list(op.inputs), "outputs": list(op.outputs),
            "options": {k: _jsonable(v) for k, v in op.options.items()}} for op in graph.ops]
    doc = {"version": GRAPH_FILE_VERSION, "name": graph.name, "inputs": list(graph.inputs),
           "outputs": list(graph.outputs), "tensors": tensors, "ops": ops}
    arrays["graph"] = np.array(json.dumps(doc, sort_keys=True))
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_graph(path):
    """The :class:`~nets.graph.Graph` that :func:`save_graph` wrote to ``path``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelError
        If the file is not such an archive (or of another format version).
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a qmac graph file (.npz): {exc}") from None
    with archive:
        if "graph" not in archive.files:
            raise ModelError(f"{path} is not a qmac graph file: it has no 'graph' entry (it "
                             f"has {', '.join(sorted(archive.files)) or 'none'})")
        doc = json.loads(str(archive["graph"]))
        if doc.get("version") != GRAPH_FILE_VERSION:
            raise ModelError(f"{path} is a qmac graph file of version {doc.get('version')!r}; "
                             f"this qmac reads version {GRAPH_FILE_VERSION}")
        tensors = []
        for entry in doc["tensors"]:
            i = entry["index"]
            quant = None
            if "quant" in entry:
                quant = Quant(archive[f"scale_{i}"], archive[f"zero_point_{i}"],
                              entry["quant"]["axis"], entry["quant"]["bits"])
            data = archive[f"data_{i}"] if f"data_{i}" in archive.files else None
            tensors.append(Tensor(i, entry["name"], tuple(entry["shape"]), entry["dtype"],
                                  quant, data))
        ops = [Op(i, entry["kind"], entry["inputs"], entry["outputs"],
                  {k: _tuples(v) for k, v in entry["options"].items()})
               for i, entry in enumerate(doc["ops"])]
    return Graph(tensors, ops, doc["inputs"], doc["outputs"], doc["name"])
