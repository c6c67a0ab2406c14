"""The student trainer behind ``xmkd distill``: K skeleton students learn together (eq. 6).

Each step loads one batch, runs each student once on it, and computes every student's loss with
:class:`xmkd.losses.StudentLoss` (teacher CE or KL, plus the detached-peer mutual term); since
peers are detached, one backward pass through the sum gives each student the gradient of its own
loss, and each student then steps its own optimizer (updates are simultaneous, as in the Deep
Mutual Learning reference, which computes every output before updating).

The supervision comes from a target table indexed by the dataset's sample index: the teacher's
cached logits (``xmkd label``; the teacher never runs here) or labels (ground truth, optionally
with injected noise, for the full-supervision baseline and Table 1). Datasets yield
``(x, target, index)``; ``target`` is only used for validation.

Every epoch writes ``<run_dir>/last.pt`` (students, optimizers, schedulers, RNG states of every
process, epoch, history, config) and, when the validation accuracy improves, ``best.pt``;
``resume=True`` continues from ``last.pt`` and reproduces the uninterrupted run exactly on one
process (same batches, same dropout masks, same weights).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from xmkd.checkpoint import (
    StreamInfo,
    load_checkpoint,
    make_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from xmkd.config import PRECISIONS, DistillConfig, OptimConfig
from xmkd.errors import XmkdError
from xmkd.evaluate import predict, score_students
from xmkd.losses import StudentLoss, inject_label_noise
from xmkd.train import ddp
from xmkd.train.progress import Progress

LAST, BEST = "last.pt", "best.pt"


def build_optimizer(cfg: OptimConfig, params: Any) -> torch.optim.Optimizer:
    """SGD (nesterov, as ST-GCN) or Adam (as HCN) from an :class:`OptimConfig`."""
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(
    cfg: OptimConfig, optimizer: torch.optim.Optimizer, epochs: int | None = None
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch schedule: x gamma at the milestones ("step"), every epoch ("exponential"), or
    a cosine decay to zero over ``epochs`` ("cosine")."""
    if cfg.schedule == "cosine":
        if not epochs:
            raise ValueError("a cosine schedule needs the number of epochs")
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.milestones, gamma=cfg.gamma)
    if cfg.schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma)
    return None


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed every generator a run draws from; with ``deterministic``, also make the GPU's
    kernels reproducible, so that a repeated or resumed run gives bit-identical weights.

    On a GPU the default kernels are not: cuDNN picks convolution algorithms that accumulate
    with atomics, and a resumed run drifts from the uninterrupted one in the last digits
    (measured on an H200: BatchNorm weights differed in the 4th decimal after two epochs).
    The deterministic kernels cost speed, so this is opt-in. The setting stays for the rest of
    the process (training runs in its own process from the CLI and the GUI).
    """
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global generator data code may use)
    torch.manual_seed(seed)
    if deterministic:
        use_deterministic_kernels(True)


def autocast_dtype(precision: str, device: str) -> torch.dtype | None:
    """The dtype a run's forward passes are autocast to (None: float32 throughout), after
    checking that the device can do it."""
    if precision not in PRECISIONS:
        raise XmkdError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if not device.startswith("cuda"):
        raise XmkdError(
            f"--precision bf16 is for CUDA GPUs, and this run trains on {device}: leave it at fp32"
        )
    if not torch.cuda.is_bf16_supported():
        raise XmkdError(
            "this GPU has no bfloat16 arithmetic (an NVIDIA Ampere or newer GPU has): leave "
            "--precision at fp32"
        )
    return torch.bfloat16


def in_precision(autocast: torch.dtype | None, device_type: str) -> Any:
    """The context a training forward pass runs in: autocast to ``autocast`` (see
    :func:`autocast_dtype`), or none at all for float32."""
    if autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=autocast)


def use_deterministic_kernels(on: bool) -> None:
    """Switch torch to (``on``) or back from its deterministic GPU kernels."""
    import os

    if on:
        # cuBLAS needs a fixed workspace to be reproducible; read when it first starts
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = on
    if on:
        torch.backends.cudnn.benchmark = False
    # warn_only: an op without a deterministic kernel warns (naming itself), not fails
    torch.use_deterministic_algorithms(on, warn_only=True)


def target_table(
    config: DistillConfig,
    num_samples: int,
    num_classes: int,
    teacher_logits: torch.Tensor | np.ndarray | None,
    labels: torch.Tensor | np.ndarray | Sequence[int] | None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """What each training sample is supervised with, indexed by the dataset index.

    ``ce``/``kl``: the teacher's logits (N, C); ``full``: labels (N,), with ``config.noise`` of
    them replaced by random wrong ones. Also returns facts for the log (e.g. noise applied).
    """
    info: dict[str, Any] = {}
    if config.supervision in ("ce", "kl"):
        if teacher_logits is None:
            raise XmkdError(
                f"supervision {config.supervision!r} needs the teacher's labels: run `xmkd label` "
                "and pass its output with --labels"
            )
        table = torch.as_tensor(np.asarray(teacher_logits), dtype=torch.float32)
        if table.shape != (num_samples, num_classes):
            raise XmkdError(
                f"the teacher labels have shape {tuple(table.shape)}, but the training set has "
                f"{num_samples} samples of {num_classes} classes"
            )
        return table, info
    if labels is None:
        raise XmkdError("full supervision needs ground-truth labels for the training samples")
    arr = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(arr) != num_samples:
        raise XmkdError(f"{len(arr)} labels for {num_samples} training samples")
    if (arr < 0).any() or (arr >= num_classes).any():
        raise XmkdError(
            "full supervision needs a ground-truth label for every training sample, but some are "
            f"unknown or out of range (classes 0..{num_classes - 1})"
        )
    if config.noise > 0:
        arr, changed = inject_label_noise(arr, config.noise, num_classes, config.noise_seed)
        info["noisy_labels"] = int(changed.sum())
    return torch.from_numpy(arr), info


def check_finite_losses(
    losses: dict[str, dict[str, float]], epoch: int, first_bad_step: int, checkpoint: Path
) -> None:
    """Stop training with one sentence when an epoch's mean loss is NaN or infinite.

    ``losses`` maps a model (``"student 0 (stgcn)"``) to its loss parts; ``first_bad_step`` is
    the first step whose loss was non-finite on this process (-1: another process saw it). Runs
    before the epoch's checkpoint is written, so ``checkpoint`` keeps the last good epoch.
    """
    for model, parts in losses.items():
        for name, value in parts.items():
            if not math.isfinite(value):
                at = f" (first at step {first_bad_step})" if first_bad_step >= 0 else ""
                raise XmkdError(
                    f"training stopped in epoch {epoch}: the {name} loss of {model} is "
                    f"{value}{at}; {checkpoint} still holds the last good epoch, if any "
                    "(lower the learning rate, check --tau and the input data for NaN values)"
                )


def train_step(
    models: Sequence[nn.Module],
    optimizers: Sequence[torch.optim.Optimizer],
    loss_fn: StudentLoss,
    x: torch.Tensor,
    target: torch.Tensor,
    clip_grad_norm: Sequence[float] | None = None,
    autocast: torch.dtype | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor, list[dict[str, torch.Tensor]]]:
    """One optimisation step of K students on one batch: each student runs once on ``x``
    (autocast to ``autocast`` when given, see :func:`autocast_dtype`).

    Returns the students' logits, the summed loss and the per-student parts.
    """
    with in_precision(autocast, x.device.type):
        logits = [m(x) for m in models]
    if autocast is not None:
        # the losses in float32 (outside autocast they would run in the logits' bfloat16): the
        # log-softmaxes at tau = 10 and the KL sums over classes need more than 8 mantissa bits
        logits = [z.float() for z in logits]
    total, parts = loss_fn(logits, target)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    total.backward()
    for i, opt in enumerate(optimizers):
        clip = clip_grad_norm[i] if clip_grad_norm else 0.0
        if clip > 0:
            nn.utils.clip_grad_norm_(ddp.unwrap(models[i]).parameters(), clip)
        opt.step()
    return logits, total, parts


@dataclass
class DistillResult:
    """What a finished (or resumed and finished) run produced."""

    run_dir: Path
    last: Path
    best: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best_accuracy: float | None = None
    best_epoch: int | None = None


def _best_key(val: dict[str, Any] | None, ensemble: str) -> float | None:
    if not val:
        return None
    if f"ensemble_{ensemble}" in val:
        return val[f"ensemble_{ensemble}"]
    return val.get("student0")


def train_students(
    config: DistillConfig,
    train_set: Dataset,
    class_names: Sequence[str],
    input_spec: dict[str, Any] | Any | None,
    run_dir: str | Path,
    teacher_logits: torch.Tensor | np.ndarray | None = None,
    labels: torch.Tensor | np.ndarray | Sequence[int] | None = None,
    val_set: Dataset | None = None,
    resume: bool = False,
    progress_json: str | None = None,
    console: bool = True,
    models: Sequence[nn.Module] | None = None,
    ctx: ddp.DistContext | None = None,
    checkpoint_extra: dict[str, Any] | None = None,
) -> DistillResult:
    """Train ``config.k`` students on ``train_set`` and return where the checkpoints are.

    ``models`` replaces the students built from ``config.students`` (any nn.Modules taking the
    dataset's ``x``; the checkpoint still records ``config.students`` as their architectures).
    ``ctx`` defaults to :func:`xmkd.train.ddp.init_distributed` (torchrun-aware).
    ``checkpoint_extra`` goes to the checkpoints' ``extra`` (e.g. the label cache's class map,
    which ``xmkd eval`` uses to score the students on data named in another vocabulary).
    """
    run_dir = Path(run_dir)
    if input_spec is None:
        input_spec = config.spec()
    ctx = ctx or ddp.init_distributed(config.device)
    num_classes = len(class_names)
    epochs = config.resolved_epochs()
    global_batch = config.resolved_batch_size()
    batch = ddp.local_batch_size(global_batch, ctx)
    table, table_info = target_table(config, len(train_set), num_classes, teacher_logits, labels)
    stream = stream_info_of(train_set)

    seed_everything(config.seed, config.deterministic)
    autocast = autocast_dtype(config.precision, ctx.device)
    if models is None:
        from xmkd.models import build_student

        models = [
            build_student(arch, num_classes, **config.model_kwargs(i))
            for i, arch in enumerate(config.students)
        ]
    if len(models) != config.k:
        raise ValueError(f"{len(models)} models given for {config.k} students")
    models = [m.to(ctx.device) for m in models]
    optimizers = [
        build_optimizer(config.optim_for(i), m.parameters()) for i, m in enumerate(models)
    ]
    schedulers = [build_scheduler(config.optim_for(i), o, epochs) for i, o in enumerate(optimizers)]
    loss_fn = StudentLoss(
        supervision=config.supervision,
        mutual=config.mutual,
        kd_tau=config.kd_tau,
        kd_tau_squared=config.kd_tau_squared,
        mutual_tau=config.mutual_tau,
        mutual_tau_squared=config.mutual_tau_squared,
        direction=config.kl_direction,
    )

    start_epoch, step, history = 0, 0, []
    best_acc: float | None = None
    best_epoch: int | None = None
    resumed_from = None
    if resume:
        state = _load_resume(run_dir / LAST, config, models, optimizers, schedulers, ctx)
        start_epoch, step, history = state["epoch"], state["step"], state["history"]
        best_acc, best_epoch = state.get("best"), state.get("best_epoch")
        resumed_from = str(run_dir / LAST)
    else:
        # distinct dropout masks per process; rank 0 draws what a single process draws
        if ctx.rank:
            torch.manual_seed(config.seed + 1000003 * ctx.rank)
    wrapped = [ddp.wrap_model(m, ctx) for m in models]

    sampler = ddp.make_sampler(train_set, ctx, shuffle=True, seed=config.seed)
    loader = DataLoader(
        train_set,
        batch_size=batch,
        sampler=sampler,
        num_workers=config.data.num_workers,
        pin_memory=ctx.device.startswith("cuda"),
        drop_last=False,
        persistent_workers=False,
    )
    steps_per_epoch = len(loader)
    progress = Progress(run_dir, progress_json, enabled=ctx.is_main, console=console)
    progress.event(
        "start",
        run_dir=str(run_dir),
        config=config.to_dict(),
        epochs=epochs,
        start_epoch=start_epoch,
        steps_per_epoch=steps_per_epoch,
        samples=len(train_set),
        k=config.k,
        archs=list(config.students),
        world_size=ctx.world_size,
        device=ctx.device,
        resumed_from=resumed_from,
        **table_info,
    )
    t_run = time.perf_counter()
    epoch_times: list[float] = []
    try:
        for epoch in range(start_epoch, epochs):
            t_epoch = time.perf_counter()
            sampler.set_epoch(epoch)
            if hasattr(train_set, "set_epoch"):  # seeded per-epoch augmentation (train.inputs)
                train_set.set_epoch(epoch)
            for m in wrapped:
                m.train()
            # sup, mutual, total, agreement; kept on the device: no host sync per step
            sums = torch.zeros(config.k, 4, dtype=torch.float64, device=ctx.device)
            seen = torch.zeros((), dtype=torch.float64, device=ctx.device)
            # first step of the epoch with a non-finite loss (-1: none), tracked on the device
            first_bad = torch.full((), -1, dtype=torch.int64, device=ctx.device)
            bar = progress.bar(steps_per_epoch, f"epoch {epoch + 1}/{epochs}")
            t_log, n_log = time.perf_counter(), 0
            for x, _target, index in loader:
                x = x.to(ctx.device, non_blocking=True)
                target = table[index].to(ctx.device, non_blocking=True)
                clips = [config.optim_for(i).clip_grad_norm for i in range(config.k)]
                logits, total, parts = train_step(
                    wrapped, optimizers, loss_fn, x, target, clips, autocast
                )
                step += 1
                bad = (first_bad < 0) & ~torch.isfinite(total.detach())
                first_bad = torch.where(bad, step, first_bad)
                n = x.shape[0]
                hard = target.argmax(dim=1) if target.dim() == 2 else target
                for i, (z, p) in enumerate(zip(logits, parts)):
                    agree = (z.detach().argmax(dim=1) == hard).double().mean()
                    sums[i] += torch.stack([p["sup"], p["mutual"], p["total"], agree]) * n
                seen += n
                n_log += n * ctx.world_size
                bar.update(1)
                if ctx.is_main and (step % max(config.log_every, 1) == 0):
                    now = time.perf_counter()
                    rate = n_log / max(now - t_log, 1e-9)
                    done = (epoch - start_epoch) * steps_per_epoch + bar.n
                    left = (epochs - start_epoch) * steps_per_epoch - done
                    eta = left * (now - t_run) / max(done, 1)
                    losses = {
                        f"student{i}": {k: float(v) for k, v in p.items()}
                        for i, p in enumerate(parts)
                    }
                    agreement = [
                        float((z.detach().argmax(dim=1) == hard).float().mean()) for z in logits
                    ]
                    bar.set_postfix(
                        loss=f"{float(total.detach()) / config.k:.3f}", agree=f"{agreement[0]:.2f}"
                    )
                    progress.event(
                        "step",
                        epoch=epoch + 1,
                        step=step,
                        losses=losses,
                        lr=[o.param_groups[0]["lr"] for o in optimizers],
                        teacher_agreement=agreement,
                        samples_per_s=round(rate, 2),
                        eta_s=round(eta, 1),
                    )
                    progress.scalars(
                        {f"loss/student{i}": float(p["total"]) for i, p in enumerate(parts)}, step
                    )
                    t_log, n_log = now, 0
            progress.close_bar()
            for sched in schedulers:
                if sched is not None:
                    sched.step()
            ddp.all_reduce_sum(sums, ctx)
            ddp.all_reduce_sum(seen, ctx)
            means = (sums / seen.clamp(min=1)).cpu().tolist()
            train_s = time.perf_counter() - t_epoch
            check_finite_losses(
                {
                    f"student {i} ({config.students[i]})": {"supervised": m[0], "mutual": m[1]}
                    for i, m in enumerate(means)
                },
                epoch + 1,
                int(first_bad),
                run_dir / LAST,
            )

            val = None
            if val_set is not None and config.eval_every and (epoch + 1) % config.eval_every == 0:
                if ctx.is_main:
                    val = _validate(models, val_set, class_names, config, ctx.device, global_batch)
                val = ddp.broadcast_object(val, ctx)
            key = _best_key(val, config.ensemble)
            improved = key is not None and (best_acc is None or key > best_acc)
            if improved:
                best_acc, best_epoch = key, epoch + 1
            record = {
                "epoch": epoch + 1,
                "losses": {
                    f"student{i}": {"sup": m[0], "mutual": m[1], "total": m[2]}
                    for i, m in enumerate(means)
                },
                "teacher_agreement": [m[3] for m in means],
                "val": val,
                "lr": [o.param_groups[0]["lr"] for o in optimizers],
                "train_s": round(train_s, 3),
                "samples_per_s": round(float(seen.cpu()) / max(train_s, 1e-9), 2),
            }
            history.append(record)
            rngs = _gather_rng(ctx)
            checkpoint = None
            if ctx.is_main:
                payload = _payload(
                    config, models, class_names, input_spec, record,
                    {**table_info, **(checkpoint_extra or {})}, stream=stream,
                    train={
                        "optimizers": [o.state_dict() for o in optimizers],
                        "schedulers": [s.state_dict() if s else None for s in schedulers],
                        "rng": rngs,
                        "epoch": epoch + 1,
                        "step": step,
                        "history": history,
                        "best": best_acc,
                        "best_epoch": best_epoch,
                        "world_size": ctx.world_size,
                    },
                )  # fmt: skip
                checkpoint = save_checkpoint(run_dir / LAST, payload)
                if improved or (key is None and val_set is None):
                    payload.pop("train")
                    save_checkpoint(run_dir / BEST, payload)
            ddp.barrier(ctx)
            epoch_s = time.perf_counter() - t_epoch
            epoch_times.append(epoch_s)
            eta = (epochs - epoch - 1) * (sum(epoch_times) / len(epoch_times))
            progress.event(
                "epoch",
                **record,
                best=best_acc,
                best_epoch=best_epoch,
                epoch_s=round(epoch_s, 3),
                eta_s=round(eta, 1),
                checkpoint=str(checkpoint) if checkpoint else None,
            )
            scalars = {f"train/agreement_student{i}": m[3] for i, m in enumerate(means)}
            scalars.update({f"val/{k}": v for k, v in (val or {}).items()})
            progress.scalars(scalars, epoch + 1)
            if val:
                shown = ", ".join(f"{k} {100 * v:.1f}%" for k, v in val.items())
                progress.message(f"epoch {epoch + 1}/{epochs}: val {shown}")
        if ctx.is_main and not (run_dir / BEST).exists() and (run_dir / LAST).exists():
            # validation never improved on nothing (e.g. no val set): the last is the best
            payload = load_checkpoint(run_dir / LAST, kind="students")
            payload.pop("train", None)
            save_checkpoint(run_dir / BEST, payload)
        progress.event(
            "end",
            best=best_acc,
            best_epoch=best_epoch,
            checkpoint=str(run_dir / BEST),
            elapsed_s=round(time.perf_counter() - t_run, 3),
        )
    finally:
        progress.close()
    return DistillResult(run_dir, run_dir / LAST, run_dir / BEST, history, best_acc, best_epoch)


def _payload(
    config: DistillConfig,
    models: Sequence[nn.Module],
    class_names: Sequence[str],
    input_spec: Any,
    record: dict[str, Any],
    table_info: dict[str, Any],
    train: dict[str, Any] | None,
    stream: StreamInfo | None = None,
) -> dict[str, Any]:
    return make_checkpoint(
        "students",
        [
            (arch, config.model_kwargs(i), ddp.unwrap(m))
            for i, (arch, m) in enumerate(zip(config.students, models))
        ],
        list(class_names),
        input_spec,
        config=config.to_dict(),
        ensemble=config.ensemble,
        extra={"epoch": record["epoch"], "val": record["val"], **table_info},
        train=train,
        stream=stream,
    )


def stream_info_of(train_set: Any) -> StreamInfo | None:
    """How the training clips were cut (median valid frames, frame rate, body selection), for
    the checkpoint's ``stream`` entry; None for a dataset that does not say (e.g. in-memory
    tensors). Looks through wrappers (``StudentWindows.base``) to the skeleton dataset."""
    base = train_set
    while not hasattr(base, "valid_frames") and hasattr(base, "base"):
        base = base.base
    valid = np.asarray(getattr(base, "valid_frames", []), dtype=np.int64)
    valid = valid[valid > 0]
    if valid.size == 0:
        return None
    packed = getattr(base, "packed", None)
    if packed is not None:  # packed NTU RGB+D: 30 fps, bodies chosen at packing time
        fps: float | None = 30.0
        selection = str(packed.manifest.get("selection", "motion"))
        max_bodies = int(np.asarray(packed.data).shape[-1])
    else:
        rates = [s.fps for s in getattr(base, "sessions", []) if s.fps]
        fps = float(rates[0]) if rates else None
        selection = str(getattr(base, "selection", "motion"))
        max_bodies = int(getattr(base, "max_bodies", 2))
    if fps is None:
        return None
    return StreamInfo(
        clip_frames=int(round(float(np.median(valid)))),
        fps=fps,
        selection=selection,
        max_bodies=max_bodies,
    )


def _validate(
    models: Sequence[nn.Module],
    val_set: Dataset,
    class_names: Sequence[str],
    config: DistillConfig,
    device: str,
    batch: int,
) -> dict[str, float]:
    logits, targets, _ = predict(
        [ddp.unwrap(m) for m in models], val_set, max(batch, 64), device, config.data.num_workers
    )
    report = score_students(logits, targets, class_names, ensembles=("mean", "max"))
    return {m.name: m.top1 for m in report.all()}


def _gather_rng(ctx: ddp.DistContext) -> list[dict[str, Any]]:
    """Every process' RNG states (rank order), so a resumed DDP run continues each stream."""
    state = rng_state()
    if not ctx.distributed:
        return [state]
    import torch.distributed as dist

    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, state)
    return gathered


def _load_resume(
    path: Path,
    config: DistillConfig,
    models: Sequence[nn.Module],
    optimizers: Sequence[torch.optim.Optimizer],
    schedulers: Sequence[Any],
    ctx: ddp.DistContext,
) -> dict[str, Any]:
    if not path.is_file():
        raise XmkdError(f"{path}: nothing to resume from (no checkpoint of an earlier run there)")
    data = load_checkpoint(path, kind="students", map_location="cpu")
    train = data.get("train")
    if not train:
        raise XmkdError(f"{path}: has no training state (optimizer, RNG) to resume from")
    archs = [e["arch"] for e in data["models"]]
    if archs != list(config.students):
        raise XmkdError(
            f"{path}: was trained with students {','.join(archs)}, not "
            f"{','.join(config.students)}; resume with the same students"
        )
    for i, (m, entry) in enumerate(zip(models, data["models"])):
        try:
            m.load_state_dict(entry["state_dict"])
        except RuntimeError as exc:
            raise XmkdError(
                f"{path}: student {i} does not fit the configured model: {exc}"
            ) from exc
    for opt, st in zip(optimizers, train["optimizers"]):
        opt.load_state_dict(st)
    for sched, st in zip(schedulers, train["schedulers"]):
        if sched is not None and st is not None:
            sched.load_state_dict(st)
    rngs = train["rng"]
    set_rng_state(rngs[ctx.rank] if ctx.rank < len(rngs) else rngs[0])
    return train


def run_summary(result: DistillResult) -> str:
    last = result.history[-1] if result.history else None
    if not last:
        return f"nothing to do: {result.last} is already at the last epoch"
    parts = [f"{len(result.history)} epochs in {result.run_dir}"]
    if result.best_accuracy is not None and not math.isnan(result.best_accuracy):
        parts.append(f"best validation accuracy {100 * result.best_accuracy:.2f}%")
        parts.append(f"(epoch {result.best_epoch})")
    parts.append(f"-> {result.best}")
    return " ".join(parts)
