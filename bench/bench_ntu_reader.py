"""Benchmark: xmkd's NTU ``.skeleton`` reader against the reference way of reading the files.

The reference reader below is written the way the reference gendata scripts read (st-gcn
``tools/utils/ntu_read_skeleton.py``): ``readline`` per line, ``split``, ``float`` per value and a
dict per frame, body and joint. Both read the same files in the same run; the script prints the
milliseconds per file for each and the speed ratio.

    python bench/bench_ntu_reader.py [--dir ../shared/data/ntu-samples] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from xmkd.ntu import read_skeleton

DEFAULT_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ntu-samples"

BODY_KEYS = (
    "bodyID clipedEdges handLeftConfidence handLeftState handRightConfidence handRightState "
    "isResticted leanX leanY trackingState"
).split()
JOINT_KEYS = (
    "x y z depthX depthY colorX colorY orientationW orientationX orientationY orientationZ "
    "trackingState"
).split()


def reference_read(path: str | Path) -> dict:
    """THE REFERENCE WAY (for comparison only): line by line, float per value, dicts per joint."""
    with open(path) as f:
        sequence = {"numFrame": int(f.readline()), "frameInfo": []}
        for _ in range(sequence["numFrame"]):
            frame = {"numBody": int(f.readline()), "bodyInfo": []}
            for _ in range(frame["numBody"]):
                body = {k: float(v) for k, v in zip(BODY_KEYS, f.readline().split())}
                body["numJoint"] = int(f.readline())
                body["jointInfo"] = []
                for _ in range(body["numJoint"]):
                    joint = {k: float(v) for k, v in zip(JOINT_KEYS, f.readline().split())}
                    body["jointInfo"].append(joint)
                frame["bodyInfo"].append(body)
            sequence["frameInfo"].append(frame)
    return sequence


def reference_joints(sequence: dict) -> np.ndarray:
    """(B, 25, 12) joint fields of a reference-read sequence, bodies in file order."""
    rows = [
        [[joint[k] for k in JOINT_KEYS] for joint in body["jointInfo"]]
        for frame in sequence["frameInfo"]
        for body in frame["bodyInfo"]
    ]
    return np.array(rows, dtype=np.float64).reshape(-1, 25, 12)


def best_ms(fn, path: Path, repeat: int) -> float:
    """Median of ``repeat`` timed calls (after one warm-up), in milliseconds."""
    fn(path)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="folder of .skeleton files")
    parser.add_argument("--repeat", type=int, default=20, help="timed reads per file and reader")
    args = parser.parse_args(argv)
    files = sorted(args.dir.glob("*.skeleton"))
    if not files:
        print(f"no .skeleton files in {args.dir}", file=sys.stderr)
        return 1
    print(f"{'file':32s} {'frames':>6s} {'xmkd ms':>8s} {'reference ms':>13s} {'ratio':>6s}")
    total_ours = total_ref = 0.0
    for path in files:
        seq = read_skeleton(path)
        # Same numbers from both readers, or the comparison means nothing.
        if not np.array_equal(seq.joints, reference_joints(reference_read(path))):
            print(f"{path.name}: readers disagree", file=sys.stderr)
            return 1
        ours = best_ms(read_skeleton, path, args.repeat)
        ref = best_ms(reference_read, path, args.repeat)
        total_ours += ours
        total_ref += ref
        print(f"{path.name:32s} {seq.num_frames:6d} {ours:8.2f} {ref:13.2f} {ref / ours:5.1f}x")
    print(
        f"{'all files':32s} {'':6s} {total_ours:8.2f} {total_ref:13.2f} "
        f"{total_ref / total_ours:5.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
