"""Network zoo: torch.nn definitions (shapes only, no weights needed) and their input variants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    build: Callable[[], "object"]
    input_shape: tuple[int, ...]


def _tiny_resnet():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.short = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            return torch.relu(y + (x if self.short is None else self.short(x)))

    class TinyResNet(nn.Module):
        """A 2-block ResNet for 32x32 images: conv stem, two residual blocks, pool, linear."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            self.layer1 = Block(16, 16, 1)
            self.layer2 = Block(16, 32, 2)
            self.fc = nn.Linear(32, 10)

        def forward(self, x):
            x = torch.relu(self.bn(self.stem(x)))
            x = self.layer2(self.layer1(x))
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
            return self.fc(x)

    return TinyResNet().eval()


def _mlp():
    from torch import nn

    return nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)).eval()


NETWORKS: dict[str, NetworkSpec] = {
    "tiny_resnet": NetworkSpec("tiny_resnet", _tiny_resnet, (1, 3, 32, 32)),
    "mlp": NetworkSpec("mlp", _mlp, (8, 256)),
}


def get_network(name: str) -> NetworkSpec:
    if name not in NETWORKS:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[name]
