"""Benchmark: xmkd's NTU ``.skeleton`` reader against the reference way of reading the files.

The reference reader below is written the way the reference gendata scripts read (st-gcn
``tools/utils/ntu_read_skeleton.py``): ``readline`` per line, ``split``, ``float`` per value and a
dict per frame, body and joint. Both read the same files in the same run, interleaved; the script
prints the best wall and CPU milliseconds per file for each and the speed ratios.

    python bench/bench_ntu_reader.py [--dir ../shared/data/ntu-samples] [--repeat 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from xmkd.ntu import read_skeleton
from xmkd.ntu.skeleton_file import FAST_PARSER

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


def best_times(readers: dict, path: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """Per reader (best wall ms, best CPU ms) over ``repeat`` reads, the readers interleaved so
    both see the same machine load. CPU time (this thread's) is the steadier figure on a shared
    machine; wall time is what a user waits."""
    best = {name: [float("inf"), float("inf")] for name in readers}
    for _ in range(repeat):
        for name, read in readers.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            read(path)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            best[name] = [min(best[name][0], wall * 1e3), min(best[name][1], cpu * 1e3)]
    return {name: (w, c) for name, (w, c) in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="folder of .skeleton files")
    parser.add_argument("--repeat", type=int, default=30, help="timed reads per file and reader")
    args = parser.parse_args(argv)
    files = sorted(args.dir.glob("*.skeleton"))
    if not files:
        print(f"no .skeleton files in {args.dir}", file=sys.stderr)
        return 1
    readers = {"xmkd": read_skeleton, "reference": reference_read}
    # The C extension when it was built at install, else the numpy path.
    print(f"xmkd fast path: {FAST_PARSER}")
    print("best of", args.repeat, "reads per file; ms wall (ms CPU)")
    print(f"{'file':30s} {'frames':>6s} {'xmkd':>15s} {'reference':>15s} {'ratio wall (CPU)':>17s}")
    totals = np.zeros((2, 2))
    for path in files:
        seq = read_skeleton(path)
        # Same numbers from both readers, or the comparison means nothing.
        if not np.array_equal(seq.joints, reference_joints(reference_read(path))):
            print(f"{path.name}: readers disagree", file=sys.stderr)
            return 1
        times = best_times(readers, path, args.repeat)
        ours, ref = np.array(times["xmkd"]), np.array(times["reference"])
        totals += [ours, ref]
        print(
            f"{path.name:30s} {seq.num_frames:6d} {ours[0]:7.2f} ({ours[1]:5.2f}) "
            f"{ref[0]:7.2f} ({ref[1]:5.2f}) {ref[0] / ours[0]:9.1f}x ({ref[1] / ours[1]:4.1f}x)"
        )
    ours, ref = totals
    print(
        f"{'all files':30s} {'':6s} {ours[0]:7.2f} ({ours[1]:5.2f}) {ref[0]:7.2f} ({ref[1]:5.2f}) "
        f"{ref[0] / ours[0]:9.1f}x ({ref[1] / ours[1]:4.1f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
