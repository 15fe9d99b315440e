"""The one error type of model import and inference: a model or input that qmac cannot run."""

__all__ = ["ModelError"]


class ModelError(ValueError):
    """A model file, a graph or an inference input that qmac refuses, with a one-line reason.

    Raised for corrupt or float models, unsupported ops or tensor types, inconsistent
    graphs and inputs of the wrong dtype or shape. A missing file raises
    :class:`FileNotFoundError` instead, as ``open`` does.
    """
