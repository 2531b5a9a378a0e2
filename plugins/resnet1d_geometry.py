"""The ResNet-1D's sequence geometry: lengths per stage, strides and padding (pure Python, testable without
torch). Below both :mod:`eegbench_plugins.resnet1d` (the registration) and :mod:`eegbench_plugins.resnet1d_nn`
(the torch modules), so neither imports the other's module for it."""

from __future__ import annotations

import math
from collections.abc import Sequence

from eegbench.errors import EegbenchError


def stage_lengths(n_times: int, n_blocks: int, lengths: Sequence[int] | str = "auto") -> list[int]:
    """Sequence length after the stem and after each block (``n_blocks`` values)."""
    if n_times < 1:
        raise EegbenchError(f"resnet1d: n_times must be positive, got {n_times}")
    if lengths == "auto":
        out, current = [], n_times
        for i in range(n_blocks):
            if i >= 2:
                current = math.ceil(current / 2)
            out.append(current)
        return out
    if isinstance(lengths, str) or len(lengths) != n_blocks:
        raise EegbenchError(
            f'resnet1d: lengths must be "auto" or {n_blocks} integers (one per entry of filters), got {lengths!r}'
        )
    out = [int(v) for v in lengths]
    previous = n_times
    for i, length in enumerate(out):
        stride = stage_stride(previous, length) if length > 0 else 0
        if length < 1 or stride < 1 or math.ceil(previous / stride) != length:
            raise EegbenchError(
                f"resnet1d: lengths[{i}] = {length} cannot be reached from length {previous} with an integer stride "
                f'(use lengths = "auto" or lengths that divide, e.g. {previous}, {math.ceil(previous / 2)})'
            )
        previous = length
    return out


def stage_stride(length_in: int, length_out: int) -> int:
    """The integer stride taking ``length_in`` to ``length_out = ceil(length_in / stride)``."""
    return math.ceil(length_in / length_out)


def conv_padding(length_in: int, stride: int, kernel_size: int) -> tuple[int, int]:
    """(left, right) padding giving ``ceil(length_in / stride)`` outputs; symmetric as in the paper when possible."""
    pad = max(0, (kernel_size - stride + 1) // 2)
    target = math.ceil(length_in / stride)
    out = (length_in + 2 * pad - kernel_size) // stride + 1
    extra = max(0, (target - 1) * stride + kernel_size - (length_in + 2 * pad)) if out < target else 0
    return pad, pad + extra
