"""Numeric precisions a study can name, and the bytes one value takes in each."""

from __future__ import annotations

# Weight precisions a study's grid accepts.
PRECISIONS: tuple[str, ...] = ("bfloat16", "float16", "float32", "fp8")

# Bytes per value (a parameter, or one element of the KV cache). mxfp4 appears in the published data.
BYTES_PER_VALUE: dict[str, float] = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "fp8": 1.0, "mxfp4": 0.5}
