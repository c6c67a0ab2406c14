"""Datasets for training and evaluation: skeleton clips for the students (over sessions or packed
NTU RGB+D) and videos for the teacher (over sessions). See :mod:`xmkd.data.datasets`."""

from xmkd.data.datasets import (
    SPLITS,
    VIDEO_MODALITIES,
    PackedSkeletonDataset,
    SkeletonDataset,
    VideoDataset,
)

__all__ = [
    "SPLITS",
    "VIDEO_MODALITIES",
    "PackedSkeletonDataset",
    "SkeletonDataset",
    "VideoDataset",
]
