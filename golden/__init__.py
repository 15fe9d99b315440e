"""qmac's golden model: integer-only inference, bit-exact with TensorFlow Lite / gemmlowp."""

from .binary import bitplane_gemm, pack_bits, pack_signs, unpack_bits, xnor_popcount_gemm
from .conv import (
    conv2d,
    conv_gemm_shape,
    conv_output_shape,
    im2col,
    quantized_conv2d,
    quantized_fully_connected,
)
from .fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    activation_range,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    real_multiplier,
    requantize,
    round_half_away,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap,
)
from .gemm import gemm
from .lowbit import (
    batchnorm_thresholds,
    binarize,
    dorefa_quantize_activations,
    dorefa_quantize_weights,
    ternarize,
    threshold,
)
from .quant import choose_qparams, dequantize, qrange, quantize

__all__ = [
    "INT32_MAX", "INT32_MIN", "activation_range", "batchnorm_thresholds", "binarize",
    "bitplane_gemm", "choose_qparams", "conv2d", "conv_gemm_shape", "conv_output_shape",
    "dequantize", "dorefa_quantize_activations", "dorefa_quantize_weights", "gemm", "im2col",
    "multiply_by_quantized_multiplier", "pack_bits", "pack_signs", "qrange", "quantize",
    "quantize_multiplier", "quantized_conv2d", "quantized_fully_connected",
    "real_multiplier", "requantize", "round_half_away", "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul", "ternarize", "threshold", "unpack_bits", "wrap",
    "xnor_popcount_gemm",
]
