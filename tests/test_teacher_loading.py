"""The TSN teacher's input pipeline and data loaders: the lookup-table normalisation gives, bit
for bit, what the float arithmetic gives; loader workers kept across epochs see each epoch's
seed; each worker runs OpenCV single-threaded."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from xmkd.models.tsn import (
    FLOW_MEAN,
    FLOW_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TSNInputSpec,
    snippets_input,
)
from xmkd.train.inputs import TeacherClips, loader_options


def reference_snippets_input(snippets, spec, train, rng):
    """The pipeline as first written: stack full crops, flip, float32 arithmetic, transpose."""
    n, h, w, ch = snippets.shape
    size = spec.crop_size

    def resize(img, width, height):
        if img.shape[1] == width and img.shape[0] == height:
            return img
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)

    flipped = False
    if train:
        short = min(h, w)
        cw = max(1, int(short * spec.scales[rng.integers(len(spec.scales))]))
        chh = max(1, int(short * spec.scales[rng.integers(len(spec.scales))]))
        y0, x0 = int(rng.integers(0, h - chh + 1)), int(rng.integers(0, w - cw + 1))
        out = np.stack([resize(f[y0 : y0 + chh, x0 : x0 + cw], size, size) for f in snippets])
        flipped = bool(spec.flip and rng.random() < 0.5)
        if flipped:
            out = out[:, :, ::-1]
    else:
        frames = snippets
        if spec.scale_size is not None:
            scale = spec.scale_size / min(h, w)
            nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
            frames = np.stack([resize(f, nw, nh) for f in frames])
            h, w = nh, nw
        if h < size or w < size:
            frames = np.stack([resize(f, max(w, size), max(h, size)) for f in frames])
            h, w = frames.shape[1:3]
        y0, x0 = (h - size) // 2, (w - size) // 2
        out = frames[:, y0 : y0 + size, x0 : x0 + size]
    x = np.ascontiguousarray(out).astype(np.float32)
    if spec.modality == "flow":
        if flipped:
            x[..., 0] = 255.0 - x[..., 0]
        x = (x / 255.0 - FLOW_MEAN) / FLOW_STD
    else:
        mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
        x = (x / 255.0 - mean) / std
    k = spec.num_segments
    x = x.reshape(k, spec.span, size, size, ch)
    if spec.modality == "rgbdiff":
        diffs = x[:, 1:] - x[:, :-1]
        x = np.concatenate([x[:, :1], diffs], axis=1) if spec.keep_rgb else diffs
    return torch.from_numpy(
        np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3).reshape(k, -1, size, size))
    )


SPECS = [
    TSNInputSpec(modality="rgb", crop_size=48, scale_size=56),
    TSNInputSpec(modality="rgb", crop_size=40, scale_size=None),  # test: crop only
    TSNInputSpec(modality="rgbdiff", crop_size=48, scale_size=56),
    TSNInputSpec(modality="rgbdiff", new_length=2, keep_rgb=True, crop_size=36, scales=(1.0,)),
    TSNInputSpec(modality="rgbdiff", crop_size=96, scale_size=None),  # test: frames < crop
    TSNInputSpec(modality="flow", crop_size=48, scale_size=64),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.modality}-{s.crop_size}")
def test_snippets_input_is_bit_identical_to_the_float_pipeline(spec):
    ch = 2 if spec.modality == "flow" else 3
    frames = np.random.default_rng(1).integers(0, 256, (3 * spec.span, 60, 84, ch), np.uint8)
    for seed in range(8):  # both flips, several crops and scales
        for train in (True, False):
            want = reference_snippets_input(frames, spec, train, np.random.default_rng(seed))
            got = snippets_input(frames, spec, train, np.random.default_rng(seed))
            assert got.dtype == torch.float32 and got.is_contiguous()
            assert torch.equal(got, want)
            if ch == 3:  # BGR frames as decoded give the same input
                bgr = np.ascontiguousarray(frames[..., ::-1])
                got = snippets_input(bgr, spec, train, np.random.default_rng(seed), bgr=True)
                assert torch.equal(got, want)


def test_snippets_input_refuses_frames_it_cannot_normalise():
    spec = TSNInputSpec(modality="rgb", crop_size=16, scale_size=None)
    with pytest.raises(ValueError, match="needs uint8 frames"):
        snippets_input(np.zeros((3, 20, 20, 3), np.float32), spec)
    with pytest.raises(ValueError, match="needs uint8 frames"):
        snippets_input(np.zeros((3, 20, 20, 2), np.uint8), spec)


class _Clips:
    """A tiny in-memory video dataset (the ``load`` contract of xmkd.data.VideoDataset)."""

    def __init__(self, count: int = 4):
        rng = np.random.default_rng(0)
        self.clips = [rng.integers(0, 256, (12, 24, 32, 3), np.uint8) for _ in range(count)]
        self.names = [f"S001C001P001R001A{i + 1:03d}" for i in range(count)]
        self.labels = np.arange(count)

    def __len__(self) -> int:
        return len(self.clips)

    def load(self, index: int) -> np.ndarray:
        return self.clips[index]


def _epochs(loader: DataLoader, data: TeacherClips, epochs: int) -> list[torch.Tensor]:
    out = []
    for epoch in range(epochs):
        data.set_epoch(epoch)
        out.append(torch.cat([x for x, _, _ in loader]))
    return out


def test_persistent_workers_see_every_epochs_augmentation():
    spec = TSNInputSpec(modality="rgb", crop_size=16, scale_size=None)
    data = TeacherClips(_Clips(), spec, train=True, seed=5)
    options = loader_options(1)
    assert options["persistent_workers"]
    in_worker = _epochs(DataLoader(data, batch_size=2, **options), data, 2)
    in_process = _epochs(DataLoader(data, batch_size=2), data, 2)
    assert not torch.equal(in_process[0], in_process[1])  # the epochs draw differently
    for a, b in zip(in_worker, in_process):
        assert torch.equal(a, b)


class _Threads(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> tuple[int, int]:
        return cv2.getNumThreads(), torch.get_num_threads()


def test_loader_workers_run_opencv_single_threaded():
    loader = DataLoader(_Threads(), batch_size=2, **loader_options(1))
    ((cv_threads, torch_threads),) = loader
    assert cv_threads.tolist() == [1, 1] and torch_threads.tolist() == [1, 1]
