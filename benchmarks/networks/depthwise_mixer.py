"""A small network no zoo network resembles, for trying `tensorcost tune` / `score` as a user would:
a ConvMixer-style stack (patch embedding, depthwise 5x5 + pointwise 1x1 with residuals, GELU,
batch norm), 1x3x64x64 input.

    .venv/bin/tensorcost tune --network benchmarks/networks/depthwise_mixer.py:build --input-shape 1,3,64,64 --compare-xgb
"""

from torch import nn


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


def build(dim: int = 64, depth: int = 3, kernel: int = 5, patch: int = 4, classes: int = 10) -> nn.Module:
    layers = [nn.Conv2d(3, dim, patch, stride=patch), nn.GELU(), nn.BatchNorm2d(dim)]
    for _ in range(depth):
        layers += [Residual(nn.Sequential(nn.Conv2d(dim, dim, kernel, groups=dim, padding=kernel // 2), nn.GELU(), nn.BatchNorm2d(dim))),
                   nn.Conv2d(dim, dim, 1), nn.GELU(), nn.BatchNorm2d(dim)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(dim, classes)]
    return nn.Sequential(*layers).eval()
