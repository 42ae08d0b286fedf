"""Vector quantization: binary (1/2/4 bits per dimension), fp16 and 7-bit scalar quantization."""

from segstore.quantization.state import QuantizationState, quantizer_for, train

__all__ = ["QuantizationState", "quantizer_for", "train"]
