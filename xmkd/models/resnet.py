"""ResNet-18/34/50 backbones for the TSN teacher, without a torchvision dependency.

The module tree, and therefore every state_dict key and shape, is torchvision's ResNet (``conv1``,
``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ..., ``fc``), so a user's ImageNet
weights file saved from torchvision loads with ``load_state_dict``. Nothing is downloaded.

``width`` scales every channel count (1.0 = torchvision); a width of 0.25-0.5 gives a network
that trains on a CPU on small synthetic frames. ``in_channels`` sets the first conv's input
channels (3 for RGB, 2 * L for L stacked flow fields, 3 * L for stacked RGB differences).
``stem="small"`` swaps the ImageNet stem for one suited to small frames (see ``Stem``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

ResNetArch = Literal["resnet18", "resnet34", "resnet50"]
#: "imagenet": torchvision's 7x7 stride-2 conv + max pool (input / 4); "small": a 3x3 stride-2
#: conv and no pool (input / 2), for low-resolution frames such as 64x64 synthetic clips, where
#: the ImageNet stem leaves thin limbs a pixel wide. Only "imagenet" takes ImageNet weights.
Stem = Literal["imagenet", "small"]


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck with the stride on the 3x3 conv (torchvision's "ResNet v1.5")."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


#: (block type, blocks per stage) of each depth, as torchvision.
RESNET_LAYOUTS: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """torchvision-compatible ResNet; ``forward_features`` returns the pooled (N, C) features."""

    def __init__(
        self,
        arch: ResNetArch = "resnet18",
        num_classes: int = 1000,
        in_channels: int = 3,
        width: float = 1.0,
        stem: Stem = "imagenet",
    ):
        super().__init__()
        if stem not in ("imagenet", "small"):
            raise ValueError(f"unknown ResNet stem {stem!r}; choose 'imagenet' or 'small'")
        if arch not in RESNET_LAYOUTS:
            raise ValueError(f"unknown ResNet {arch!r}; choose one of {', '.join(RESNET_LAYOUTS)}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        block, layers = RESNET_LAYOUTS[arch]
        self.arch = arch
        widths = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.inplanes = widths[0]
        self.stem = stem
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = (
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            if stem == "imagenet"
            else nn.Identity()
        )
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = widths[3] * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)
        self.reset_parameters()

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def reset_parameters(self) -> None:
        """torchvision's init: Kaiming-normal (fan_out) convs, BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def resnet(arch: ResNetArch = "resnet18", **kwargs) -> ResNet:
    """Build a ResNet by name (``num_classes``, ``in_channels``, ``width`` as in ``ResNet``)."""
    return ResNet(arch, **kwargs)
