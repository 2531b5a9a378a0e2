"""The torch wrapper of the braindecode zoo (imported only when a model is built)."""

from __future__ import annotations

from torch import nn


class BraindecodeEmbedder(nn.Module):
    """A braindecode model whose classification head was replaced by identities; output flattened to ``[B, F]``."""

    takes_subject = False

    def __init__(self, net: nn.Module, model_name: str):
        super().__init__()
        self.net = net
        self.model_name = model_name
        self.n_features = 0  # set by the factory's dry forward

    def forward(self, x):
        out = self.net(x)
        if isinstance(out, (tuple, list)):  # some models return (prediction, extras)
            out = out[0]
        return out.reshape(out.shape[0], -1)


class Passthrough(nn.Module):
    """Stands in for a removed head: returns its first input (some heads take extra arguments)."""

    def forward(self, x, *args, **kwargs):
        return x
