"""``xmkd export``: a students checkpoint -> one ONNX model (checked against PyTorch) or a TensorRT
engine."""

from __future__ import annotations

import argparse
import shutil

from xmkd.commands import _args as A

#: torch writes opsets from 17 (the least with the ops the students need) to 23
OPSET = A.int_range(17, 23, "torch exports opsets 17 to 23")
MAX_BATCH = A.int_range(1, 4096, "the TensorRT profile's largest batch")
WORKSPACE_MB = A.int_range(1, 1 << 20, "MB of GPU memory; 1048576 is a terabyte")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a students checkpoint to ONNX or TensorRT",
        description=(
            "Export the K students of CHECKPOINT as one model whose output is the ensemble's "
            "class probabilities (input: preprocessed windows (N, 3, T, 25, M) named "
            "'skeleton'; output 'probs'). The batch is dynamic; the window too when every "
            "student allows it (ST-GCN yes, HCN no). Every export is checked with ONNX Runtime "
            "against PyTorch on random windows and, with --check-data, on real NTU skeletons "
            "through the shared preprocessing: the max abs difference is printed and the export "
            "fails above 1e-4 (FP32) or 1e-2 (FP16). --format tensorrt also builds a TensorRT "
            "engine (TensorRT 10 or 11 and a CUDA GPU; engines are cached by ONNX hash, GPU, "
            "TensorRT version, precision and shape profile)."
        ),
    )
    p.add_argument(
        "checkpoint", type=A.as_path(A.existing_file), help="a students checkpoint (xmkd distill)"
    )
    p.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx", help="default onnx")
    p.add_argument(
        "--out",
        type=A.as_path(A.out_file),
        help="output file (default: the checkpoint's name with .onnx, or .plan for tensorrt)",
    )
    p.add_argument(
        "--window",
        type=A.window_int,
        help="frames per window of the example input (default: the checkpoint's input spec)",
    )
    p.add_argument(
        "--fp16",
        action="store_true",
        help="FP16: an FP16 ONNX graph (float32 I/O) for onnx; for tensorrt the FP16 builder "
        "flag on TensorRT 10, an FP16 graph on TensorRT 11 (which removed the flag)",
    )
    p.add_argument(
        "--ensemble",
        choices=("mean", "max"),
        help="how student probabilities combine (default: the checkpoint's rule, else mean)",
    )
    p.add_argument("--opset", type=OPSET, default=18, help="ONNX opset, at least 17 (default 18)")
    p.add_argument(
        "--exporter",
        choices=("dynamo", "torchscript"),
        default="dynamo",
        help="torch's exporter (default dynamo, opset >= 18; torchscript is faster and can "
        "write opset 17)",
    )
    p.add_argument(
        "--check-data",
        nargs="+",
        type=A.existing_path,
        metavar="PATH",
        help="NTU .skeleton files or folders to check the export on real windows as well",
    )
    p.add_argument(
        "--max-batch",
        type=MAX_BATCH,
        default=8,
        help="TensorRT profile's largest batch (default 8)",
    )
    p.add_argument(
        "--workspace-mb",
        type=WORKSPACE_MB,
        default=1024,
        help="TensorRT builder workspace (default 1024)",
    )
    A.add_check(p, check_opset)
    p.set_defaults(func=run)


def check_opset(args: argparse.Namespace) -> None:
    """The opsets each of torch's exporters writes (torch 2.x)."""
    if args.exporter == "dynamo" and args.opset < 18:
        A.fail(
            f"argument --opset: the dynamo exporter writes opset 18 or newer, got {args.opset} "
            "(use --exporter torchscript for opset 17)"
        )
    if args.exporter == "torchscript" and args.opset > 20:
        A.fail(
            f"argument --opset: the torchscript exporter writes opsets 17 to 20, got {args.opset}"
        )


def run(args: argparse.Namespace) -> int:

    from engines.export import (
        checkpoint_metadata,
        export_checked,
        real_windows,
        skeleton_files,
    )
    from xmkd.checkpoint import load_students
    from xmkd.errors import XmkdError

    if args.format == "tensorrt":
        # Fail in one sentence before a long export when TensorRT or the GPU is missing.
        from engines.tensorrt import GpuInfo, load_tensorrt

        load_tensorrt()
        GpuInfo.current()
    students, meta = load_students(args.checkpoint)
    spec = meta.spec()
    window = args.window or spec.window
    if window != spec.window:
        spec = spec.replace(window=window)
    rule = args.ensemble or meta.ensemble
    suffix = ".plan" if args.format == "tensorrt" else ".onnx"
    out = args.out or args.checkpoint.with_suffix(suffix)
    onnx_path = out if args.format == "onnx" else out.with_suffix(".onnx")
    real = None
    if args.check_data:
        real = real_windows(skeleton_files(args.check_data), spec)
    if onnx_path.resolve() == args.checkpoint.resolve():
        raise XmkdError(f"--out {out} would overwrite the checkpoint")
    fp16_onnx = args.fp16 and args.format == "onnx"
    print(
        f"exporting {len(students)} student(s) ({', '.join(meta.archs)}, ensemble {rule}) "
        f"to {onnx_path} with the {args.exporter} exporter, window {window} ..."
    )
    result = export_checked(
        students,
        onnx_path,
        window,
        rule=rule,
        persons=spec.num_persons,
        fp16=fp16_onnx,
        real_inputs=real,
        opset=args.opset,
        exporter=args.exporter,
        metadata={**checkpoint_metadata(meta), "input_spec": spec.to_dict()},
    )
    axes = ["batch"] * result.dynamic_batch + ["window"] * result.dynamic_window
    print(
        f"wrote {result.path} (opset {result.opset}, {result.precision}, dynamic: "
        f"{', '.join(axes) or 'none'})"
    )
    print(f"parity vs PyTorch: {result.parity.summary()}")
    if not args.check_data:
        print("note: checked on random windows only; add --check-data DIR for real skeletons")
    if args.format == "tensorrt":
        from engines.tensorrt import (
            EngineCache,
            build_or_load_engine,
            detect_features,
            load_tensorrt,
            plan_build,
            profile_for_onnx,
        )

        trt = load_tensorrt()
        features = detect_features(trt)
        precision = "fp16" if args.fp16 else "fp32"
        build = plan_build(features, precision)
        profile = profile_for_onnx(result.path, window, max_batch=args.max_batch)
        how = "the FP16 builder flag" if build.builder_flags else f"an {build.onnx_precision} graph"
        print(
            f"building a TensorRT {features.version_string} engine ({precision} via {how}, "
            f"batch {profile.batch}, window {profile.window}) ..."
        )
        plan, cached_path, built = build_or_load_engine(
            result.path,
            profile,
            precision,
            cache=EngineCache(),
            workspace_bytes=args.workspace_mb << 20,
            trt=trt,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached_path, out)
        state = "built" if built else "reused from the cache"
        print(f"wrote {out} ({len(plan) / 1e6:.1f} MB, engine {state}: {cached_path})")
    return 0
