"""Continual ST-GCN: a trained xmkd ST-GCN run a few frames at a time, each layer computing only
its new output columns (Hedegaard et al., "Online skeleton-based action recognition with
continual spatio-temporal graph convolutional networks", Pattern Recognition 2023).

:class:`ContinualSTGCN` holds the trained :class:`~xmkd.models.stgcn.STGCN`'s modules unchanged
(same state_dict keys: a reference-layout state_dict loads into it) and adds no weight. Its
``forward(frames, *state) -> (logits, ready, *new_state)`` is one step: ``CHUNK`` new frames
(the product of the temporal strides, 4) in, every layer's new columns out; all state is explicit
tensors, so the step exports to ONNX / TensorRT as one static graph without control flow. The
strided blocks are where "every 2nd/4th step" happens: a step brings 4 columns to blocks 1-4,
2 to blocks 5-7 and 1 to blocks 8-10. :meth:`step` feeds one frame at a time (a prediction every
4th frame) and :meth:`flush` gives the exact prediction of the frames seen so far.

Per block the state is the last ``kernel - 1`` (8) inputs of the temporal convolution (after
BN-ReLU) and, for the residual branch, the last ``pad`` (4) block inputs: an output column
centred on position c is computed when position c + 4 has arrived, and its residual input, the
block input at c, is taken from that delay buffer, so both branches stay aligned. Globally pooled
features are a running mean over the last ``K`` final columns (a ring of K column vectors; K is
the number of final columns the regular model has on ``window`` frames, ceil(window / 4)).

Which outputs equal the regular model's (``STGCN`` with its zero padding, eval mode):

* Columns. After :meth:`initial_state` (a reset: zero buffers are exactly the regular model's
  left zero padding; columns at negative positions are masked to zero by a position counter),
  every final-layer column the step emits equals, to float32 rounding, the regular model's
  column at the same position on the frames since the reset. Column j (centred on frame 4j)
  is emitted by the step that completes frame 4j + 79: the last 19 columns of the regular model,
  whose receptive field reaches into its right zero padding, are not emitted yet; they come
  later, computed from real frames instead of zeros. That delay (``DELAY`` = 76 frames for the
  reference layout, the receptive field's half-width) is the price of the cheap step.
* ``forward``/``step`` logits (the fast, delayed prediction): ``fcn`` of the mean of the last K
  emitted columns. This differs from the regular model on the last ``window`` frames in two
  ways, both from zero padding at the window's edges: the regular model's first and last 19
  columns see its zero padding, and its window ends at the newest frame, not 76 frames before.
  Once warmed up, the columns are those of the regular model with its temporal padding removed
  ("valid" convolutions, :func:`unpadded_columns`) on the stream.
* :meth:`flush` (the equal variant): the last K columns of the regular model on the frames since
  the reset *including* the right-edge columns computed with its zero padding (each block's
  missing columns are computed from the buffered state plus four zero columns; the state is not
  changed). While the frames since the reset number at most ``window``, the flushed logits
  equal ``STGCN(x[:, :, :frames])``, the unchanged regular model on exactly those frames, to
  1e-4 (tested). Its cost is each block's tail (about 1/7 of a full window of 300 frames at
  the reference width), not one step's.

Windows: no resampling or re-centring happens inside a step, so the continual path serves input
specs whose windows are frames as they come ("pad" with centre "none" or "frame"); a "resize"
or "crop_resize" window, or centring on the window's first frame, changes every earlier frame
whenever the window slides and cannot be updated column by column (see
:func:`supports_continual`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from xmkd.models.stgcn import STGCN

#: Saturation of the step counter (a float32 exactly counts to 2^24; the counter only decides
#: whether a position is negative, so it may stop growing long before).
COUNT_LIMIT = 1.0e6


class ContinualState(NamedTuple):
    """What :meth:`ContinualSTGCN.step` carries between frames: the step tensors and the frames
    of an incomplete chunk (N, C, r, V, M) with r < CHUNK (None when empty)."""

    tensors: tuple[torch.Tensor, ...]
    pending: torch.Tensor | None = None


def supports_continual(arch: str, spec: Any) -> str | None:
    """None when a student of ``arch`` with input ``spec`` (``xmkd.preprocess.InputSpec``) can run
    continually, else the reason (one sentence) it cannot."""
    if arch != "stgcn":
        return f"only ST-GCN students run continually, not {arch}"
    if spec.fit != "pad":
        return (
            f"the input spec fits clips by {spec.fit!r}: a resampled window changes every frame "
            "when it slides (continual inference needs 'pad' windows: frames as they come)"
        )
    if spec.center == "first":
        return "the input spec centres on the window's first frame, which moves as it slides"
    return None


class ContinualSTGCN(nn.Module):
    """A trained :class:`STGCN` (its modules, unchanged) stepped ``CHUNK`` frames at a time.

    Args:
        model: the trained ST-GCN (eval mode is used; its modules are shared, not copied).
        window: frames of the regular model's window; the pooled mean covers its
            ceil(window / CHUNK) final columns.
        persons: M, persons per sample (fixed by the state's shape).
    """

    def __init__(self, model: STGCN, window: int, persons: int = 2):
        super().__init__()
        if window < 1 or persons < 1:
            raise ValueError(f"window and persons must be at least 1, got {window}, {persons}")
        # Same attribute names as STGCN: the state_dict keys are the regular model's.
        self.data_bn = model.data_bn
        self.st_gcn_networks = model.st_gcn_networks
        self.edge_importance = model.edge_importance
        self.fcn = model.fcn
        self.register_buffer("A", model.A)
        self.in_channels = model.in_channels
        self.num_class = model.num_class
        self.window = int(window)
        self.persons = int(persons)
        # Per block: temporal kernel, padding, stride, input rate (columns per step) and the
        # position of the first new input column at step 0 (negative: still inside the left
        # zero padding of the regular model).
        self.layout: list[tuple[int, int, int, int, int]] = []
        strides = [b.tcn[2].stride[0] for b in self.st_gcn_networks]
        self.chunk = math.prod(strides)
        rate, offset = self.chunk, 0
        for block in self.st_gcn_networks:
            conv = block.tcn[2]
            kernel, pad, stride = conv.kernel_size[0], conv.padding[0], conv.stride[0]
            if kernel != 2 * pad + 1 or (offset - pad) % stride:
                raise ValueError("continual ST-GCN needs centred odd temporal kernels")
            self.layout.append((kernel, pad, stride, rate, offset))
            rate, offset = rate // stride, (offset - pad) // stride
        #: position (final-layer column index) of the column emitted by step 0
        self.final_offset = offset
        #: frames between a final column's centre and the newest frame when it is emitted
        self.delay = -offset * self.chunk
        self.columns = -(-self.window // self.chunk)
        self.feature_channels = model.feature_channels

    # ------------------------------------------------------------------ state
    def state_names(self) -> list[str]:
        """Names of the state tensors, in ``forward``'s order."""
        names = ["count"]
        for i, block in enumerate(self.st_gcn_networks):
            names.append(f"h{i}")
            if block.has_residual:
                names.append(f"x{i}")
        return [*names, "pool", "pool_w"]

    def initial_state(
        self, batch: int = 1, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Zero state for ``batch`` samples (a reset: the zeros are the left zero padding)."""
        device = device or self.A.device
        b = batch * self.persons
        v = self.A.shape[-1]
        zeros = [torch.zeros(1, device=device)]
        channels = self.in_channels
        for block, (kernel, pad, *_rest) in zip(self.st_gcn_networks, self.layout):
            out = block.tcn[2].out_channels
            zeros.append(torch.zeros(b, out, kernel - 1, v, device=device))
            if block.has_residual:
                zeros.append(torch.zeros(b, channels, pad, v, device=device))
            channels = out
        zeros.append(torch.zeros(b, self.columns, channels, device=device))
        zeros.append(torch.zeros(self.columns, device=device))
        return tuple(zeros)

    # ------------------------------------------------------------------ the step
    def _adjacency(self, i: int) -> torch.Tensor:
        return self.A if self.edge_importance is None else self.A * self.edge_importance[i]

    def _embed(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, C, S, V, M) frames -> (N*M, C, S, V) after data_bn, as STGCN.features does."""
        n, c, s, v, m = frames.shape
        x = frames.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, s)
        x = self.data_bn(x)
        return x.view(n, m, v, c, s).permute(0, 1, 3, 4, 2).reshape(n * m, c, s, v)

    def _tcn_input(self, block: nn.Module, i: int, x: torch.Tensor, positions: torch.Tensor):
        """BN-ReLU of the graph conv of new block inputs; columns at negative positions are the
        regular model's zero padding."""
        h = block.tcn[1](block.tcn[0](block.gcn(x, self._adjacency(i))))
        return h * (positions >= 0).to(h.dtype).view(1, 1, -1, 1)

    def _block_out(
        self, block: nn.Module, h_cat: torch.Tensor, x_cat: torch.Tensor | None, stride: int
    ) -> torch.Tensor:
        conv = block.tcn[2]
        out = block.tcn[3](F.conv2d(h_cat, conv.weight, conv.bias, stride=(stride, 1)))
        if x_cat is not None:
            # The residual conv strides itself: give it the inputs from the first output centre.
            out = out + block.residual(x_cat[:, :, : out.shape[2] * stride])
        return block.relu(out)

    def forward(self, frames: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step: ``frames`` (N, C, CHUNK, V, M) and the state -> (logits (N, classes),
        ready (1,): how many columns the pooled mean holds (0: no prediction yet), *new state).
        """
        count, rest = state[0], list(state[1:])
        pool, pool_w = rest[-2], rest[-1]
        new_state: list[torch.Tensor] = [torch.clamp(count + 1.0, max=COUNT_LIMIT)]
        x = self._embed(frames)
        k = 0
        for i, block in enumerate(self.st_gcn_networks):
            kernel, pad, stride, rate, offset = self.layout[i]
            positions = count * rate + offset + torch.arange(rate, device=x.device)
            h_cat = torch.cat((rest[k], self._tcn_input(block, i, x, positions)), dim=2)
            new_state.append(h_cat[:, :, -(kernel - 1) :])
            k += 1
            x_cat = None
            if block.has_residual:
                x_cat = torch.cat((rest[k], x), dim=2)
                new_state.append(x_cat[:, :, -pad:])
                k += 1
            x = self._block_out(block, h_cat, x_cat, stride)
        # x: (B, C, 1, V), the final column at position count + final_offset.
        column = x.mean(dim=3).transpose(1, 2)  # (B, 1, C)
        valid = (count + self.final_offset >= 0).to(column.dtype)
        pool = torch.cat((pool[:, 1:], column), dim=1)
        pool_w = torch.cat((pool_w[1:], valid), dim=0)
        new_state += [pool, pool_w]
        return (self._logits(pool, pool_w), pool_w.sum().view(1), *new_state)

    def _logits(self, pool: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        total = torch.clamp(weights.sum(), min=1.0)
        feats = (pool * weights.view(1, -1, 1)).sum(dim=1) / total  # (B, C)
        feats = feats.view(-1, self.persons, feats.shape[-1]).mean(dim=1)
        return self.fcn(feats[:, :, None, None]).flatten(1)

    # ------------------------------------------------------------------ frame by frame
    def start(self, batch: int = 1, device: torch.device | str | None = None) -> ContinualState:
        """A fresh (reset) state for :meth:`step`."""
        return ContinualState(self.initial_state(batch, device))

    def step(
        self, frame: torch.Tensor, state: ContinualState
    ) -> tuple[torch.Tensor | None, ContinualState]:
        """One frame (N, C, V, M) in; the delayed logits when this frame completes a step (every
        CHUNK-th frame) and a column is pooled, else None; and the new state."""
        frame = frame.unsqueeze(2)
        pending = frame if state.pending is None else torch.cat((state.pending, frame), dim=2)
        if pending.shape[2] < self.chunk:
            return None, ContinualState(state.tensors, pending)
        logits, ready, *tensors = self(pending, *state.tensors)
        return (logits if float(ready) > 0 else None), ContinualState(tuple(tensors))

    def flush(self, state: ContinualState) -> torch.Tensor | None:
        """Logits of the regular model's last K columns on the frames since the reset,
        right-edge columns included (computed with its zero padding); None before any frame.
        The state is not changed."""
        tensors = state.tensors
        count, rest = tensors[0], list(tensors[1:])
        pool, pool_w = rest[-2], rest[-1]
        if state.pending is not None:
            x = self._embed(state.pending)
        else:
            x = pool.new_zeros(pool.shape[0], self.in_channels, 0, self.A.shape[-1])
        k = 0
        for i, block in enumerate(self.st_gcn_networks):
            kernel, pad, stride, rate, offset = self.layout[i]
            m = x.shape[2]
            positions = count * rate + offset + torch.arange(m, device=x.device)
            h = (
                self._tcn_input(block, i, x, positions)
                if m
                else x.new_zeros(x.shape[0], block.tcn[2].in_channels, 0, x.shape[3])
            )
            zeros = h.new_zeros(h.shape[0], h.shape[1], pad, h.shape[3])
            h_cat = torch.cat((rest[k], h, zeros), dim=2)
            k += 1
            x_cat = None
            if block.has_residual:
                x_cat = torch.cat((rest[k], x), dim=2)
                k += 1
            x = self._block_out(block, h_cat, x_cat, stride)
        _, _, _, _, offset = self.layout[-1]
        first = count * 1 + self.final_offset  # position of the first flushed column
        columns = x.mean(dim=3).transpose(1, 2)
        positions = first + torch.arange(columns.shape[1], device=x.device)
        valid = (positions >= 0).to(columns.dtype)
        pool = torch.cat((pool, columns), dim=1)[:, -self.columns :]
        weights = torch.cat((pool_w, valid), dim=0)[-self.columns :]
        if float(weights.sum()) == 0:
            return None
        return self._logits(pool, weights)


def regular_columns(model: STGCN, x: torch.Tensor) -> torch.Tensor:
    """The regular model's final columns (N*M, T', C) on ``x`` (N, C, T, V, M): the per-column
    features ``STGCN.features`` averages (mean over joints only), from the model's own code."""
    n, c, t, v, m = x.shape
    h = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
    h = model.data_bn(h)
    h = h.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
    for i, block in enumerate(model.st_gcn_networks):
        adjacency = model.A if model.edge_importance is None else model.A * model.edge_importance[i]
        h = block(h, adjacency)
    return h.mean(dim=3).transpose(1, 2)


def unpadded_columns(model: STGCN, x: torch.Tensor) -> torch.Tensor:
    """The final columns (N*M, T', C) of ``model`` with its temporal padding removed ("valid"
    temporal convolutions, the residual cropped to the surviving centres) on ``x``: what the
    delayed continual step pools once warmed up."""
    n, c, t, v, m = x.shape
    h = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
    h = model.data_bn(h)
    h = h.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
    for i, block in enumerate(model.st_gcn_networks):
        adjacency = model.A if model.edge_importance is None else model.A * model.edge_importance[i]
        conv = block.tcn[2]
        pad, stride = conv.padding[0], conv.stride[0]
        g = block.tcn[1](block.tcn[0](block.gcn(h, adjacency)))
        out = block.tcn[3](F.conv2d(g, conv.weight, conv.bias, stride=(stride, 1)))
        if block.has_residual:
            out = out + block.residual(h[:, :, pad : pad + out.shape[2] * stride])
        h = block.relu(out)
    return h.mean(dim=3).transpose(1, 2)


__all__ = [
    "COUNT_LIMIT",
    "ContinualSTGCN",
    "ContinualState",
    "regular_columns",
    "supports_continual",
    "unpadded_columns",
]
