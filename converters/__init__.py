"""Host-side converter: trained detector → TFLite with embedded edgekit metadata. Needs TensorFlow
(``pip install 'edgekit[convert]'``); the device runtime never imports this package."""

import os as _os

# Before TensorFlow is imported anywhere: its C++ start-up chatter (CPU feature hints, CUDA probing
# on machines without a GPU) is not news to a converter user. Set it yourself to see it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .bundle import convert_bundle
from .convert import IO_TYPES, MODES, ConversionReport, convert, to_tflite

__all__ = ["convert", "convert_bundle", "to_tflite", "ConversionReport", "MODES", "IO_TYPES"]
