"""TinyNet: temporal convolution, spatial convolution, pooling, flatten.

Input float32 ``[B, n_chans, n_times]`` -> ``[B, n_filters * (n_times // pool)]``.
"""

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, n_chans: int, n_times: int, *, n_filters: int, kernel: int, pool: int):
        super().__init__()
        if n_times < pool:
            raise ValueError(f"tinynet needs n_times >= pool ({pool}), got {n_times}")
        self.temporal = nn.Conv2d(1, n_filters, (1, kernel), padding=(0, kernel // 2))
        self.spatial = nn.Conv2d(n_filters, n_filters, (n_chans, 1))
        self.norm = nn.BatchNorm2d(n_filters)
        self.pool = nn.AvgPool2d((1, pool))
        self.n_features = n_filters * (n_times // pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spatial(self.temporal(x.unsqueeze(1)))
        x = self.pool(torch.nn.functional.elu(self.norm(x)))
        return x.flatten(1)
