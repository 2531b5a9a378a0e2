"""torch modules of ``resnet1d`` / ``resnet1d-subject`` (imported only when a model is built).

See :mod:`eegbench_plugins.resnet1d` for the architecture and the length rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from eegbench.errors import EegbenchError

from .resnet1d_geometry import conv_padding, stage_lengths, stage_stride

# an index past any real slot: looking it up raises instead of silently using another subject's layer
_NO_SLOT = 2**40


class PaddedConv1d(nn.Conv1d):
    """Conv1d with (possibly asymmetric) padding fixed at build time for a known input length."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, length_in: int, bias: bool = False):
        left, right = conv_padding(length_in, stride, kernel_size)
        symmetric = left == right
        super().__init__(c_in, c_out, kernel_size, stride=stride, padding=left if symmetric else 0, bias=bias)
        self.extra_pad = None if symmetric else (left, right)

    def forward(self, x):
        if self.extra_pad is not None:
            x = F.pad(x, self.extra_pad)
        return super().forward(x)


class ResBlock1d(nn.Module):
    def __init__(self, c_in: int, c_out: int, length_in: int, stride: int, kernel_size: int, dropout: float):
        super().__init__()
        self.conv1 = PaddedConv1d(c_in, c_out, kernel_size, 1, length_in)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.dropout1 = nn.Dropout(dropout)
        self.conv2 = PaddedConv1d(c_out, c_out, kernel_size, stride, length_in)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.dropout2 = nn.Dropout(dropout)
        skip: list[nn.Module] = []
        if stride > 1:
            skip.append(nn.MaxPool1d(stride, stride=stride, ceil_mode=True))
        if c_in != c_out:
            skip.append(nn.Conv1d(c_in, c_out, 1, bias=False))
        self.skip = nn.Sequential(*skip)

    def forward(self, x, y):
        y = self.skip(y)
        x = self.dropout1(torch.relu(self.bn1(self.conv1(x))))
        x = self.conv2(x) + y
        y = x  # the un-normalised sum travels on the skip path (pre-activation order)
        x = self.dropout2(torch.relu(self.bn2(x)))
        return x, y


class ResNet1d(nn.Module):
    """``[B, n_chans, n_times]`` -> ``[B, filters[-1] * lengths[-1]]``."""

    takes_subject = False

    def __init__(self, n_chans: int, n_times: int, filters: Sequence[int], lengths, kernel_size: int, dropout: float):
        super().__init__()
        filters = [int(f) for f in filters]
        if not filters or any(f < 1 for f in filters):
            raise EegbenchError(f"resnet1d: filters must be positive integers, got {filters!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise EegbenchError(f"resnet1d: kernel_size must be an odd positive integer, got {kernel_size}")
        if not 0.0 <= dropout < 1.0:
            raise EegbenchError(f"resnet1d: dropout must be in [0, 1), got {dropout}")
        lens = stage_lengths(n_times, len(filters), lengths)
        self.n_chans, self.n_times = n_chans, n_times
        self.lengths = lens
        self.filters = filters
        self.stem_stride = stage_stride(n_times, lens[0])
        self.conv1 = PaddedConv1d(n_chans, filters[0], kernel_size, self.stem_stride, n_times)
        self.bn1 = nn.BatchNorm1d(filters[0])
        blocks = []
        for i in range(len(filters)):
            c_in = filters[max(i - 1, 0)]
            l_in = lens[max(i - 1, 0)]
            blocks.append(ResBlock1d(c_in, filters[i], l_in, stage_stride(l_in, lens[i]), kernel_size, dropout))
        self.blocks = nn.ModuleList(blocks)
        self.n_features = filters[-1] * lens[-1]

    def stem(self, x):
        # conv -> BN with no activation, as the seed (and Ribeiro et al.'s code): the first block's skip path
        # starts from the BN output, and the first ReLU is the one inside the first block
        return self.bn1(self.conv1(x))

    def trunk(self, x):
        y = x
        for block in self.blocks:
            x, y = block(x, y)
        return x.flatten(1)

    def forward(self, x):
        return self.trunk(self.stem(x))


class SubjectResNet1d(ResNet1d):
    """ResNet1d whose input layer is per subject; ``forward(x, subject)`` with int64 ``subject [B]``.

    The per-subject layers are applied in one grouped convolution over the batch (no Python loop over
    subjects). A subject number without a layer raises an index error inside that lookup.
    """

    takes_subject = True

    def __init__(self, n_chans, n_times, filters, lengths, kernel_size, dropout, subjects, subject_layer):
        super().__init__(n_chans, n_times, filters, lengths, kernel_size, dropout)
        if subject_layer not in ("stem", "channel-mix"):
            raise EegbenchError(
                f'resnet1d-subject: subject_layer must be "stem" or "channel-mix", got {subject_layer!r}'
            )
        self.subject_layer = subject_layer
        self.subject_weights = nn.ParameterDict()
        self.register_buffer("_slot", torch.full((1,), _NO_SLOT, dtype=torch.long), persistent=False)
        self._order: list[int] = []
        for s in subjects:  # the training subjects each start from their own fresh init
            self._add(int(s), self._fresh_weight())
        if subject_layer == "stem":
            # the shared stem conv is unused: each subject owns its copy (kept for the padding geometry)
            self.conv1.weight.requires_grad_(False)

    @property
    def subjects(self) -> list[int]:
        return list(self._order)

    def _fresh_weight(self):
        if self.subject_layer == "stem":
            w = torch.empty_like(self.conv1.weight)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # nn.Conv1d's own default init
            return w
        return torch.eye(self.n_chans).unsqueeze(-1)  # identity channel mix

    def add_subject(self, number: int, init_from: int | None = None) -> None:
        """Add subject ``number``'s input layer: a copy of ``init_from``'s, else the mean of the existing
        subjects' layers (a fresh init when there are none)."""
        number = int(number)
        key = str(number)
        if key in self.subject_weights:
            raise EegbenchError(f"resnet1d-subject: subject {number} already has an input layer")
        with torch.no_grad():
            if init_from is not None:
                if str(int(init_from)) not in self.subject_weights:
                    raise EegbenchError(
                        f"resnet1d-subject: cannot initialise subject {number} from {init_from}: no such subject "
                        f"(subjects: {self._order})"
                    )
                w = self.subject_weights[str(int(init_from))].detach().clone()
            elif self._order:
                w = torch.stack([self.subject_weights[str(s)].detach() for s in self._order]).mean(0)
            else:
                w = self._fresh_weight()
        self._add(number, w)

    def _add(self, number: int, w) -> None:
        device = self.conv1.weight.device
        self.subject_weights[str(number)] = nn.Parameter(w.to(device))
        self._order.append(number)
        size = max(max(self._order) + 1, self._slot.numel())
        slot = torch.full((size,), _NO_SLOT, dtype=torch.long, device=device)
        for i, s in enumerate(self._order):
            slot[s] = i
        self._slot = slot

    def forward(self, x, subject):
        b = x.shape[0]
        weights = torch.stack([self.subject_weights[str(s)] for s in self._order])
        w = weights.index_select(0, self._slot.index_select(0, subject))  # [B, out, in, k]
        if self.subject_layer == "channel-mix":
            x = torch.einsum("boc,bct->bot", w[..., 0], x)
            return self.trunk(self.stem(x))
        conv = self.conv1
        xin = x
        if conv.extra_pad is not None:
            xin = F.pad(xin, conv.extra_pad)
        out = F.conv1d(
            xin.reshape(1, b * self.n_chans, xin.shape[-1]),
            w.reshape(b * w.shape[1], self.n_chans, w.shape[-1]),
            stride=conv.stride,
            padding=conv.padding,
            groups=b,
        )
        out = out.reshape(b, w.shape[1], -1)
        return self.trunk(self.bn1(out))  # no activation after the stem, as ResNet1d.stem
