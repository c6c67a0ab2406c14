"""NTU RGB+D skeleton data: ``.skeleton`` files, sample names, body selection, splits, packing.

``from xmkd.ntu import read_skeleton, write_skeleton, SkeletonSequence, SampleName,
to_model_array`` is the public surface; :mod:`xmkd.ntu.splits` holds the benchmarks and the
paper's Teacher-Train / Student-Train protocol, :mod:`xmkd.ntu.pack` the packed arrays.
"""

from xmkd.ntu.bodies import SELECTIONS, select_bodies, to_model_array
from xmkd.ntu.names import SampleName, SampleNameError
from xmkd.ntu.skeleton_file import (
    BODY_INFO_FIELDS,
    JOINT_FIELDS,
    NUM_JOINTS,
    FrameBodies,
    SkeletonSequence,
    format_skeleton,
    parse_skeleton,
    read_skeleton,
    write_skeleton,
)

__all__ = [
    "BODY_INFO_FIELDS",
    "JOINT_FIELDS",
    "NUM_JOINTS",
    "SELECTIONS",
    "FrameBodies",
    "SampleName",
    "SampleNameError",
    "SkeletonSequence",
    "format_skeleton",
    "parse_skeleton",
    "read_skeleton",
    "select_bodies",
    "to_model_array",
    "write_skeleton",
]
