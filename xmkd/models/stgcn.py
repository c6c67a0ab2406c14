"""ST-GCN skeleton student, built to match the reference (yysijie/st-gcn ``net/st_gcn.py``).

Same layers, same parameter count (3,098,832 for NTU-60), same state_dict keys (so published
reference checkpoints load with ``load_state_dict``) and the same initialisation. One deliberate
difference: global pooling is a mean over (T, V) instead of ``F.avg_pool2d(x, x.size()[2:])``,
which computes the same numbers but, unlike the dynamic-kernel pooling, exports to ONNX with
dynamic shapes.

Input layout (N, C=3, T, V=25, M): persons are folded into the batch, the network runs on each
person, and the pooled features are averaged over persons before the 1x1 convolution head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xmkd.skeleton import NUM_JOINTS, stgcn_adjacency

#: (out_channels, temporal stride) of the ten ST-GCN blocks, as in the reference.
STGCN_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1),
)  # fmt: skip
TEMPORAL_KERNEL = 9


def scaled_channels(channels: int, width: float) -> int:
    """Channel count scaled by a width multiplier (at least one channel)."""
    return max(1, int(round(channels * width)))


class GraphConv(nn.Module):
    """Spatial graph convolution (the reference's ConvTemporalGraphical with t_kernel_size 1).

    A 1x1 convolution produces K groups of output channels, one per adjacency partition; each
    group is propagated over its partition matrix and the groups are summed.
    """

    def __init__(self, in_channels: int, out_channels: int, partitions: int):
        super().__init__()
        self.partitions = partitions
        self.conv = nn.Conv2d(in_channels, out_channels * partitions, kernel_size=1)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        n, kc, t, v = x.shape
        x = x.view(n, self.partitions, kc // self.partitions, t, v)
        return torch.einsum("nkctv,kvw->nctw", x, adjacency).contiguous()


class STGCNBlock(nn.Module):
    """One spatial-temporal block: graph conv, then BN-ReLU-temporal conv-BN-dropout, + residual.

    ``residual``: False for the first block (the reference adds nothing there); otherwise the
    identity when the shapes match and a strided 1x1 conv + BN when they do not.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        partitions: int,
        stride: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
    ):
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, partitions)
        pad = (TEMPORAL_KERNEL - 1) // 2
        # Indices 0..4 are part of the reference's key names (tcn.0 BN, tcn.2 conv, tcn.3 BN).
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, (TEMPORAL_KERNEL, 1), (stride, 1), (pad, 0)),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout),
        )
        self.has_residual = residual
        if not residual or (in_channels == out_channels and stride == 1):
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(x, adjacency))
        if self.has_residual:
            out = out + self.residual(x)
        return self.relu(out)


class STGCN(nn.Module):
    """Spatial Temporal Graph Convolutional Network (Yan et al., AAAI 2018) for NTU skeletons.

    Args:
        in_channels: channels per joint (3: x, y, z).
        num_class: number of action classes.
        graph_args: options of the graph, as the reference's ``graph_args``: ``layout`` (only
            "ntu-rgb+d"), ``strategy`` ("spatial" default, "uniform", "distance"), ``max_hop``
            (1), ``dilation`` (1) and ``corrected_partition`` (False = the reference's partition
            with 25/40/8 non-zeros; True = the paper's centripetal/centrifugal split).
        edge_importance_weighting: learn a (K, V, V) multiplicative mask per block.
        dropout: dropout after each block's temporal conv (the first block has none).
        width: channel multiplier (1.0 = reference); 0.25 gives a CPU-sized model.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_class: int = 60,
        graph_args: dict[str, Any] | None = None,
        edge_importance_weighting: bool = True,
        dropout: float = 0.5,
        width: float = 1.0,
    ):
        super().__init__()
        graph_args = dict(graph_args or {})
        layout = graph_args.pop("layout", "ntu-rgb+d")
        if layout != "ntu-rgb+d":
            raise ValueError(f"ST-GCN graph layout {layout!r} is not supported (only 'ntu-rgb+d')")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        adjacency = torch.tensor(stgcn_adjacency(**graph_args), dtype=torch.float32)
        self.register_buffer("A", adjacency)
        partitions = adjacency.shape[0]
        self.in_channels = in_channels
        self.num_class = num_class

        self.data_bn = nn.BatchNorm1d(in_channels * NUM_JOINTS)
        blocks = []
        channels = in_channels
        for i, (out, stride) in enumerate(STGCN_BLOCKS):
            out = scaled_channels(out, width)
            first = i == 0
            blocks.append(
                STGCNBlock(
                    channels,
                    out,
                    partitions,
                    stride=stride,
                    dropout=0.0 if first else dropout,
                    residual=not first,
                )
            )
            channels = out
        self.st_gcn_networks = nn.ModuleList(blocks)
        if edge_importance_weighting:
            self.edge_importance = nn.ParameterList(
                [nn.Parameter(torch.ones_like(adjacency)) for _ in blocks]
            )
        else:
            self.edge_importance = None
        self.fcn = nn.Conv2d(channels, num_class, kernel_size=1)
        self.feature_channels = channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's weights_init: conv N(0, 0.02), bias 0; BN weight N(1, 0.02), bias 0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, C) before the classifier, averaged over persons."""
        n, c, t, v, m = x.shape
        # data_bn normalises each (joint, channel) pair: channel index v*C + c, persons in batch.
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for i, block in enumerate(self.st_gcn_networks):
            adjacency = self.A if self.edge_importance is None else self.A * self.edge_importance[i]
            x = block(x, adjacency)
        # Mean over (T, V): same as the reference's avg_pool2d, but exportable with dynamic T.
        x = x.mean(dim=(2, 3))
        return x.view(n, m, -1).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_class) for skeletons (N, C, T, V, M)."""
        feats = self.features(x)
        return self.fcn(feats[:, :, None, None]).flatten(1)
