"""HCN skeleton student, built to match the reference (huguyuehuhu/HCN-pytorch ``model/HCN.py``).

Hierarchical Co-occurrence Network (Li et al., IJCAI 2018): per person, a raw-position stream
and a motion stream (temporal differences resized back to T) each learn point-level features
with 1x1 and (3,1) convolutions, then the joints are transposed into the channel axis so the
following 3x3 convolutions aggregate co-occurrence features over all joints. The streams are
concatenated, two more conv blocks follow, the persons are merged by an element-wise max and
two fully-connected layers classify.

Same layers, parameter count (1,062,652 at window 32 and 2,647,868 at window 64 for NTU-60),
state_dict keys and Glorot-uniform initialisation as the reference. The input window T must be
the ``window_size`` the model was built for (fc7's size depends on it); ``xmkd.preprocess``
resizes clips to it. Persons are folded into the batch instead of looped over (same numbers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xmkd.skeleton import NUM_JOINTS


def _conv(in_ch: int, out_ch: int, kernel, padding) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=kernel, stride=1, padding=padding)


class HCN(nn.Module):
    """Hierarchical Co-occurrence Network.

    Args:
        in_channel: channels per joint (3).
        num_joint: joints per person (25).
        num_person: persons in the input (2); informational, forward reads M from the input.
        out_channel: base width (64 in the reference); the layers use 64, 32, 64, 128, 256.
        window_size: frames per input window (32 for the reference NTU configuration). conv2
            outputs ``window_size`` channels, which become the second spatial axis after the
            co-occurrence transpose, so fc7 sees 256 * (window/16)^2 features.
        num_class: number of action classes.
        dropout: dropout probability (0.5 in the reference).
        width: multiplier for out_channel and fc7's 512 hidden units (1.0 = reference).
    """

    def __init__(
        self,
        in_channel: int = 3,
        num_joint: int = NUM_JOINTS,
        num_person: int = 2,
        out_channel: int = 64,
        window_size: int = 32,
        num_class: int = 60,
        dropout: float = 0.5,
        width: float = 1.0,
    ):
        super().__init__()
        if window_size < 16 or window_size % 16:
            raise ValueError(f"HCN window_size must be a multiple of 16, got {window_size}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        c = max(2, int(round(out_channel * width)))
        half = c // 2
        hidden = max(1, int(round(512 * width)))
        self.num_person = num_person
        self.num_class = num_class
        self.window_size = window_size
        self.in_channel = in_channel
        self.num_joint = num_joint

        # Position stream.
        self.conv1 = nn.Sequential(_conv(in_channel, c, 1, 0), nn.ReLU())
        self.conv2 = _conv(c, window_size, (3, 1), (1, 0))
        self.conv3 = nn.Sequential(_conv(num_joint, half, 3, 1), nn.MaxPool2d(2))
        self.conv4 = nn.Sequential(_conv(half, c, 3, 1), nn.Dropout2d(dropout), nn.MaxPool2d(2))
        # Motion stream (same shapes).
        self.conv1m = nn.Sequential(_conv(in_channel, c, 1, 0), nn.ReLU())
        self.conv2m = _conv(c, window_size, (3, 1), (1, 0))
        self.conv3m = nn.Sequential(_conv(num_joint, half, 3, 1), nn.MaxPool2d(2))
        self.conv4m = nn.Sequential(_conv(half, c, 3, 1), nn.Dropout2d(dropout), nn.MaxPool2d(2))
        # After concatenation of the two streams.
        self.conv5 = nn.Sequential(
            _conv(2 * c, 2 * c, 3, 1), nn.ReLU(), nn.Dropout2d(dropout), nn.MaxPool2d(2)
        )
        self.conv6 = nn.Sequential(
            _conv(2 * c, 4 * c, 3, 1), nn.ReLU(), nn.Dropout2d(dropout), nn.MaxPool2d(2)
        )
        side = window_size // 16
        self.fc7 = nn.Sequential(
            nn.Linear(4 * c * side * side, hidden), nn.ReLU(), nn.Dropout(dropout)
        )
        self.fc8 = nn.Linear(hidden, num_class)
        self.feature_channels = hidden
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's init: Glorot-uniform weights, zero biases."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _stream(self, x: torch.Tensor, convs: tuple[nn.Module, ...]) -> torch.Tensor:
        conv1, conv2, conv3, conv4 = convs
        out = conv2(conv1(x))  # (B, window, T, V): point-level features
        out = out.permute(0, 3, 2, 1).contiguous()  # (B, V, T, window): joints as channels
        return conv4(conv3(out))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """fc7 features (N, 512*width) for skeletons (N, C, T, V, M)."""
        n, c, t, v, m = x.shape
        if t != self.window_size:
            raise ValueError(
                f"HCN was built for windows of {self.window_size} frames but got T={t}; "
                "resize the clip with xmkd.preprocess first"
            )
        x = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        motion = x[:, :, 1:] - x[:, :, :-1]
        motion = F.interpolate(motion, size=(t, v), mode="bilinear", align_corners=False)
        out_p = self._stream(x, (self.conv1, self.conv2, self.conv3, self.conv4))
        out_m = self._stream(motion, (self.conv1m, self.conv2m, self.conv3m, self.conv4m))
        out = self.conv6(self.conv5(torch.cat((out_p, out_m), dim=1)))
        out = out.view(n, m, *out.shape[1:]).amax(dim=1)  # element-wise max over persons
        return self.fc7(out.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_class) for skeletons (N, C, T=window_size, V, M)."""
        return self.fc8(self.features(x))
