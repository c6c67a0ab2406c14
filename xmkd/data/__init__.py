"""Datasets for training and evaluation: skeleton clips for the students and videos for the
teacher, over sessions or packed NTU RGB+D. See :mod:`xmkd.data.datasets`."""

from xmkd.data.datasets import (
    SPLITS,
    VIDEO_MODALITIES,
    PackedSkeletonDataset,
    PackedVideoDataset,
    SkeletonDataset,
    VideoDataset,
)

__all__ = [
    "SPLITS",
    "VIDEO_MODALITIES",
    "PackedSkeletonDataset",
    "PackedVideoDataset",
    "SkeletonDataset",
    "VideoDataset",
]
