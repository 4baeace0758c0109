"""Network zoo: torch.nn definitions (shapes only, no weights needed) and their input variants.

The families follow TenSet's: ResNets, MobileNet-V2, ResNeXt, DenseNet, Inception-style blocks,
BERT encoders, a ViT and a DCGAN generator. torchvision is not importable beside the pinned
torch, so every network is written here with torch.nn. A *variant* is a network at one input
shape; its name is `<family>-b<batch>-<size>` (image side or sequence length).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import UserError
from .names import NameError_, check_name


@dataclass(frozen=True)
class NetworkSpec:
    """A network at one input shape. `family` is the name stem its variants share (`resnet50`);
    the architecture family a `by_family` split holds out is `architecture_family(name)`.
    `build()` returns a torch.nn.Module, or an onnx ModelProto when `kind` is "onnx"."""

    name: str
    family: str
    build: Callable[[], object]
    input_shape: tuple[int, ...]
    input_dtype: str = "float32"
    kind: str = "torch"  # "torch" | "onnx"
    input_name: str = ""  # the ONNX graph input the shape is for


# --------------------------------------------------------------------------- CNN building blocks


def _conv_bn(cin, cout, k, stride=1, groups=1, relu=True):
    from torch import nn

    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _resnet(block: str, layers: list[int], width: int = 64, groups: int = 1, num_classes: int = 1000):
    import torch
    from torch import nn

    class Basic(nn.Module):
        expansion = 1

        def __init__(self, cin, planes, stride):
            super().__init__()
            self.a = _conv_bn(cin, planes, 3, stride)
            self.b = _conv_bn(planes, planes, 3, 1, relu=False)
            self.down = None if stride == 1 and cin == planes else _conv_bn(cin, planes, 1, stride, relu=False)

        def forward(self, x):
            return torch.relu(self.b(self.a(x)) + (x if self.down is None else self.down(x)))

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, planes, stride):
            super().__init__()
            mid = planes * width // 64 * groups
            self.a = _conv_bn(cin, mid, 1)
            self.b = _conv_bn(mid, mid, 3, stride, groups=groups)
            self.c = _conv_bn(mid, planes * 4, 1, relu=False)
            self.down = None if stride == 1 and cin == planes * 4 else _conv_bn(cin, planes * 4, 1, stride, relu=False)

        def forward(self, x):
            return torch.relu(self.c(self.b(self.a(x))) + (x if self.down is None else self.down(x)))

    blk = Basic if block == "basic" else Bottleneck

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
            stages, cin = [], 64
            for i, n in enumerate(layers):
                planes = 64 * 2**i
                for j in range(n):
                    stages.append(blk(cin, planes, 2 if (j == 0 and i > 0) else 1))
                    cin = planes * blk.expansion
            self.stages = nn.Sequential(*stages)
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.stages(self.stem(x))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return ResNet().eval()


def _mobilenet_v2(num_classes: int = 1000):
    import torch
    from torch import nn

    class Inverted(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = [] if expand == 1 else [_conv_bn(cin, hidden, 1)]
            layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, cout, 1, relu=False)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            layers, cin = [_conv_bn(3, 32, 3, 2)], 32
            for t, c, n, s in cfg:
                for i in range(n):
                    layers.append(Inverted(cin, c, s if i == 0 else 1, t))
                    cin = c
            layers.append(_conv_bn(cin, 1280, 1))
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(1280, num_classes)

        def forward(self, x):
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))

    return MobileNetV2().eval()


def _densenet(growth: int = 32, blocks=(6, 12), num_classes: int = 1000):
    """DenseNet-style: dense blocks (BN-ReLU-1x1-BN-ReLU-3x3, concatenation) and transitions."""
    import torch
    from torch import nn

    class DenseLayer(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.body = nn.Sequential(
                nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
                nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
            )

        def forward(self, x):
            return torch.cat([x, self.body(x)], 1)

    class DenseNet(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
            for bi, n in enumerate(blocks):
                for _ in range(n):
                    layers.append(DenseLayer(c))
                    c += growth
                if bi != len(blocks) - 1:
                    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
                    c //= 2
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(c, num_classes)

        def forward(self, x):
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))

    return DenseNet().eval()


def _inception(num_classes: int = 1000):
    """Inception-style: parallel 1x1 / 3x3 / double-3x3 / pool branches, concatenated."""
    import torch
    from torch import nn

    class Mixed(nn.Module):
        def __init__(self, cin, c1, c3r, c3, d3r, d3, pool):
            super().__init__()
            self.b1 = _conv_bn(cin, c1, 1)
            self.b3 = nn.Sequential(_conv_bn(cin, c3r, 1), _conv_bn(c3r, c3, 3))
            self.bd = nn.Sequential(_conv_bn(cin, d3r, 1), _conv_bn(d3r, d3, 3), _conv_bn(d3, d3, 3))
            self.bp = nn.Sequential(nn.AvgPool2d(3, 1, 1), _conv_bn(cin, pool, 1))

        def forward(self, x):
            return torch.cat([self.b1(x), self.b3(x), self.bd(x), self.bp(x)], 1)

    class Inception(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(_conv_bn(3, 32, 3, 2), _conv_bn(32, 64, 3), nn.MaxPool2d(3, 2, 1), _conv_bn(64, 192, 3), nn.MaxPool2d(3, 2, 1))
            self.m1 = Mixed(192, 64, 96, 128, 16, 32, 32)
            self.m2 = Mixed(256, 128, 128, 192, 32, 96, 64)
            self.fc = nn.Linear(480, num_classes)

        def forward(self, x):
            x = self.m2(self.m1(self.stem(x)))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return Inception().eval()


def _dcgan_generator(nz: int = 100, ngf: int = 64):
    from torch import nn

    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(),
        nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh(),
    ).eval()


# --------------------------------------------------------------------------- transformers


def _encoder(dim: int, heads: int, layers: int, ffn: int):
    import torch
    from torch import nn

    class Layer(nn.Module):
        """A post-LN transformer encoder layer written out (no fused SDPA kernel in the graph)."""

        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(dim, 3 * dim)
            self.out = nn.Linear(dim, dim)
            self.ln1 = nn.LayerNorm(dim)
            self.ff1 = nn.Linear(dim, ffn)
            self.ff2 = nn.Linear(ffn, dim)
            self.ln2 = nn.LayerNorm(dim)

        def forward(self, x):
            b, s, _ = x.shape
            q, k, v = self.qkv(x).reshape(b, s, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-1, -2) * (dim // heads) ** -0.5, dim=-1)
            y = (att @ v).permute(0, 2, 1, 3).reshape(b, s, dim)
            x = self.ln1(x + self.out(y))
            return self.ln2(x + self.ff2(nn.functional.gelu(self.ff1(x))))

    return nn.Sequential(*[Layer() for _ in range(layers)])


def _bert(dim: int, heads: int, layers: int):
    from torch import nn

    class Bert(nn.Module):
        """BERT encoder over precomputed embeddings (the embedding lookup is not a tuning task)."""

        def __init__(self):
            super().__init__()
            self.encoder = _encoder(dim, heads, layers, 4 * dim)
            self.pool = nn.Linear(dim, dim)

        def forward(self, x):
            h = self.encoder(x)
            return self.pool(h[:, 0])

    return Bert().eval()


def _vit(image: int, patch: int = 16, dim: int = 192, heads: int = 3, layers: int = 4, num_classes: int = 1000):
    from torch import nn

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, dim, patch, patch)
            self.encoder = _encoder(dim, heads, layers, 4 * dim)
            self.head = nn.Linear(dim, num_classes)

        def forward(self, x):
            x = self.embed(x).flatten(2).transpose(1, 2)
            return self.head(self.encoder(x).mean(1))

    return ViT().eval()


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


def _mlp(width: int = 256, hidden: int = 512):
    from torch import nn

    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width), nn.ReLU(), nn.Linear(width, 10)).eval()


# --------------------------------------------------------------------------- operator structures TenSet's zoo lacks


def _se_resnet(layers=(2, 2, 2, 2), reduction: int = 16, num_classes: int = 1000):
    """ResNet-18 with squeeze-and-excitation: global pooling, two tiny dense layers, a sigmoid gate."""
    import torch
    from torch import nn

    class SEBlock(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.body = nn.Sequential(_conv_bn(cin, planes, 3, stride), _conv_bn(planes, planes, 3, relu=False))
            self.fc1 = nn.Linear(planes, planes // reduction)
            self.fc2 = nn.Linear(planes // reduction, planes)
            self.short = _conv_bn(cin, planes, 1, stride, relu=False) if stride != 1 or cin != planes else nn.Identity()

        def forward(self, x):
            y = self.body(x)
            s = torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1)
            s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
            return torch.relu(y * s[:, :, None, None] + self.short(x))

    class SEResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(_conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
            blocks, cin = [], 64
            for i, n in enumerate(layers):
                planes = 64 * 2**i
                for j in range(n):
                    blocks.append(SEBlock(cin, planes, 2 if j == 0 and i > 0 else 1))
                    cin = planes
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))

    return SEResNet().eval()


def _unet(base: int = 32, depth: int = 3, classes: int = 2):
    """U-Net: a convolutional encoder, and a decoder of transposed convolutions whose outputs are
    concatenated with the encoder's skip connections."""
    import torch
    from torch import nn

    def double(cin, cout):
        return nn.Sequential(_conv_bn(cin, cout, 3), _conv_bn(cout, cout, 3))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = [base * 2**i for i in range(depth + 1)]
            self.down = nn.ModuleList([double(3 if i == 0 else chans[i - 1], chans[i]) for i in range(depth)])
            self.mid = double(chans[depth - 1], chans[depth])
            self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))])
            self.dec = nn.ModuleList([double(2 * chans[i], chans[i]) for i in reversed(range(depth))])
            self.head = nn.Conv2d(chans[0], classes, 1)

        def forward(self, x):
            skips = []
            for block in self.down:
                x = block(x)
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
            x = self.mid(x)
            for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
                x = dec(torch.cat([up(x), skip], 1))
            return self.head(x)

    return UNet().eval()


def _recurrent(cell: str, dim: int = 128, hidden: int = 256, layers: int = 2, vocab: int = 1000):
    """A recurrent language model over precomputed embeddings: stacked LSTM or GRU, a projection."""
    from torch import nn

    rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]

    class RNNLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn_cls(dim, hidden, layers, batch_first=True)
            self.proj = nn.Linear(hidden, vocab)

        def forward(self, x):
            return self.proj(self.rnn(x)[0])

    return RNNLM().eval()


def _c3d(base: int = 16, num_classes: int = 400):
    """A C3D-style video network: 3D convolutions and 3D pooling over (frames, height, width)."""
    import torch
    from torch import nn

    def conv3(cin, cout):
        return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.ReLU())

    class C3D(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                conv3(3, base), nn.MaxPool3d((1, 2, 2)), conv3(base, 2 * base), nn.MaxPool3d(2),
                conv3(2 * base, 4 * base), conv3(4 * base, 4 * base), nn.MaxPool3d(2), conv3(4 * base, 8 * base), nn.AdaptiveAvgPool3d(1),
            )
            self.fc = nn.Linear(8 * base, num_classes)

        def forward(self, x):
            return self.fc(torch.flatten(self.features(x), 1))

    return C3D().eval()


def _swin(image: int = 112, patch: int = 4, dim: int = 64, heads: int = 2, window: int = 7, depths=(2, 2), num_classes: int = 1000):
    """Swin-style: self-attention inside windows of the patch grid, every other block on windows
    shifted by half a window (torch.roll), patch merging between stages."""
    import torch
    from torch import nn

    class WindowBlock(nn.Module):
        def __init__(self, d, h, shift):
            super().__init__()
            self.h, self.shift = h, shift
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.ff1, self.ff2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x):
            b, hh, ww, d = x.shape
            y = self.ln1(x)
            if self.shift:
                y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
            w = window
            y = y.reshape(b, hh // w, w, ww // w, w, d).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, d)
            q, k, v = self.qkv(y).reshape(y.shape[0], w * w, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-1, -2) * (d // self.h) ** -0.5, dim=-1)
            y = self.out((att @ v).permute(0, 2, 1, 3).reshape(-1, w * w, d))
            y = y.reshape(b, hh // w, ww // w, w, w, d).permute(0, 1, 3, 2, 4, 5).reshape(b, hh, ww, d)
            if self.shift:
                y = torch.roll(y, (self.shift, self.shift), (1, 2))
            x = x + y
            return x + self.ff2(nn.functional.gelu(self.ff1(self.ln2(x))))

    class Swin(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, dim, patch, patch)
            stages, d, h = [], dim, heads
            for i, n in enumerate(depths):
                stages.append(nn.Sequential(*[WindowBlock(d, h, (window // 2) if j % 2 else 0) for j in range(n)]))
                if i < len(depths) - 1:
                    stages.append(nn.Linear(4 * d, 2 * d))  # patch merging: 2x2 neighbours -> 2x the width
                    d, h = 2 * d, 2 * h
            self.stages = nn.ModuleList(stages)
            self.head = nn.Linear(d, num_classes)

        def forward(self, x):
            x = self.embed(x).permute(0, 2, 3, 1)
            for stage in self.stages:
                if isinstance(stage, nn.Linear):
                    b, hh, ww, d = x.shape
                    x = stage(x.reshape(b, hh // 2, 2, ww // 2, 2, d).permute(0, 1, 3, 4, 2, 5).reshape(b, hh // 2, ww // 2, 4 * d))
                else:
                    x = stage(x)
            return self.head(x.mean((1, 2)))

    return Swin().eval()


def _detection_head(anchors: int = 6, classes: int = 21):
    """An SSD-style detector: a small backbone, then per-scale convolutional heads for box offsets
    and class scores, reshaped to (boxes, 4) / (boxes, classes) and concatenated across scales."""
    import torch
    from torch import nn

    class SSD(nn.Module):
        def __init__(self):
            super().__init__()
            self.s1 = nn.Sequential(_conv_bn(3, 32, 3, 2), _conv_bn(32, 64, 3, 2), _conv_bn(64, 128, 3, 2))
            self.s2 = nn.Sequential(_conv_bn(128, 256, 3, 2))
            self.s3 = nn.Sequential(_conv_bn(256, 256, 3, 2))
            self.loc = nn.ModuleList([nn.Conv2d(c, anchors * 4, 3, padding=1) for c in (128, 256, 256)])
            self.cls = nn.ModuleList([nn.Conv2d(c, anchors * classes, 3, padding=1) for c in (128, 256, 256)])

        def forward(self, x):
            f1 = self.s1(x)
            f2 = self.s2(f1)
            f3 = self.s3(f2)
            locs, scores = [], []
            for f, loc, cls in zip((f1, f2, f3), self.loc, self.cls):
                locs.append(loc(f).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4))
                scores.append(cls(f).permute(0, 2, 3, 1).reshape(x.shape[0], -1, classes))
            return torch.cat(locs, 1), torch.sigmoid(torch.cat(scores, 1))

    return SSD().eval()


def _image_variants(family: str, build: Callable[[], object], sizes=(112, 224), batches=(1,)) -> list[NetworkSpec]:
    return [NetworkSpec(f"{family}-b{b}-{s}", family, build, (b, 3, s, s)) for b in batches for s in sizes]


def _seq_variants(family: str, build: Callable[[], object], dim: int, seqs=(64, 128), batches=(1,)) -> list[NetworkSpec]:
    return [NetworkSpec(f"{family}-b{b}-{s}", family, build, (b, s, dim)) for b in batches for s in seqs]


def _all_networks() -> dict[str, NetworkSpec]:
    specs = [
        NetworkSpec("tiny_resnet", "tiny_resnet", _tiny_resnet, (1, 3, 32, 32)),
        NetworkSpec("mlp", "mlp", _mlp, (8, 256)),
        # the MLP at the row counts of sequence models (16-256): matrix products of many rows, which the
        # training families otherwise hold only at 1 and 8 rows (issue 27, fifth CPU program set)
        *(NetworkSpec(f"mlp-b{b}-256", "mlp", _mlp, (b, 256)) for b in (16, 32, 64, 128, 256)),
        # ... and 384 wide (1,536 hidden): other inner dimensions (docs/dataset-params-zoo6.yaml: measured, not merged)
        *(NetworkSpec(f"mlp-b{b}-384", "mlp", lambda: _mlp(384, 1536), (b, 384)) for b in (16, 32, 64, 128)),
        *_image_variants("resnet18", lambda: _resnet("basic", [2, 2, 2, 2])),
        *_image_variants("resnet50", lambda: _resnet("bottleneck", [3, 4, 6, 3])),
        *_image_variants("resnext50_32x4d", lambda: _resnet("bottleneck", [3, 4, 6, 3], width=4, groups=32)),
        *_image_variants("wide_resnet50_2", lambda: _resnet("bottleneck", [3, 4, 6, 3], width=128)),
        *_image_variants("mobilenet_v2", _mobilenet_v2),
        *_image_variants("densenet", _densenet),
        *_image_variants("inception", _inception, sizes=(112, 160)),
        *_image_variants("vit_tiny", lambda: _vit(224), sizes=(224,)),
        *_seq_variants("bert_tiny", lambda: _bert(128, 2, 2), 128),
        *_seq_variants("bert_base", lambda: _bert(768, 12, 12), 768),
        NetworkSpec("dcgan-b1-64", "dcgan", _dcgan_generator, (1, 100, 1, 1)),
        NetworkSpec("dcgan-b8-64", "dcgan", _dcgan_generator, (8, 100, 1, 1)),
        # operator structures TenSet's zoo lacks (issue 13): the unseen families of by_family
        *_image_variants("se_resnet18", _se_resnet, sizes=(112,)),
        *_image_variants("unet", _unet, sizes=(64, 128)),
        *_seq_variants("lstm_lm", lambda: _recurrent("lstm"), 128, seqs=(16, 32)),
        *_seq_variants("gru_lm", lambda: _recurrent("gru"), 128, seqs=(16, 32)),
        NetworkSpec("c3d-b1-8x56", "c3d", _c3d, (1, 3, 8, 56, 56)),
        NetworkSpec("swin_tiny-b1-112", "swin_tiny", _swin, (1, 3, 112, 112)),
        NetworkSpec("ssd_head-b1-128", "ssd_head", _detection_head, (1, 3, 128, 128)),
    ]
    return {s.name: s for s in specs}


# Architecture families: the networks a `by_family` split holds out together (a new family brings
# operator structures no network of another family has).
ARCHITECTURE_FAMILIES = {
    "resnet": ("tiny_resnet", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"),
    "mobilenet": ("mobilenet_v2",),
    "densenet": ("densenet",),
    "inception": ("inception",),
    "transformer": ("bert_tiny", "bert_base", "vit_tiny"),
    "gan": ("dcgan",),
    "mlp": ("mlp",),
    "senet": ("se_resnet18",),
    "unet": ("unet",),
    "rnn": ("lstm_lm", "gru_lm"),
    "video3d": ("c3d",),
    "swin": ("swin_tiny",),
    "detection": ("ssd_head",),
}
_FAMILY_OF = {net: fam for fam, nets in ARCHITECTURE_FAMILIES.items() for net in nets}


def architecture_family(network: str) -> str:
    """'resnet50-b1-112' -> 'resnet'; a network outside the zoo is its own family."""
    name = network.split("-")[0]
    return _FAMILY_OF.get(name, name)


NETWORKS: dict[str, NetworkSpec] = _all_networks()
ZOO_NAMES = frozenset(NETWORKS)  # the names `register_network` may not take


def register_network(spec: NetworkSpec, architecture: str | None = None, replace: bool = False) -> NetworkSpec:
    """Make a network known by name, with its architecture family (`architecture`; default: its
    own name stem, a family of one): the CLI, `score`, the splits and the tuning path then see it
    as they see the zoo's. A zoo network's name cannot be taken; a registered one only with `replace`."""
    try:
        check_name("network", spec.name)
        if architecture is not None:
            check_name("network", architecture, where="architecture family")
    except NameError_ as exc:
        raise UserError(str(exc)) from None
    if spec.name in NETWORKS and (spec.name in ZOO_NAMES or not replace):
        raise UserError(f"network {spec.name!r} is already {'a zoo network' if spec.name in ZOO_NAMES else 'registered'}; give it another name")
    NETWORKS[spec.name] = spec
    stem = spec.name.split("-")[0]
    if architecture is not None:
        _FAMILY_OF[stem] = architecture
    return spec


class UnknownNetworkError(UserError, KeyError):
    """A network name the zoo does not define."""

    def __str__(self) -> str:  # KeyError quotes its message; a user error is plain text
        return str(self.args[0])


def get_network(name: str) -> NetworkSpec:
    if name not in NETWORKS:
        raise UnknownNetworkError(f"unknown network {name!r}; known: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[name]
