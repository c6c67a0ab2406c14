"""The TSN teacher trainer behind ``xmkd teacher train``.

The teacher learns from the labeled videos of the Teacher-Train split (cross-entropy, no label
smoothing: its soft outputs must stay informative for KL distillation), with TSN's recipe
(``xmkd.config.TeacherConfig``: SGD momentum 0.9, weight decay 5e-4, gradient norm clipped to
20, step schedule). Afterwards it is evaluated on Student-Train: that accuracy is how often the
labels it will hand to the students are right (the paper's teacher: 86%, i.e. 14% wrong labels).

Checkpoints (kind ``"teacher"``, see ``xmkd.checkpoint``) are written every epoch to
``<run_dir>/teacher.pt`` with the optimizer/scheduler/RNG state for ``resume``; the file that
``xmkd label`` reads is that same checkpoint (the training state is ignored by readers).
Progress events are the same JSON lines as distillation (``xmkd.train.progress``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from xmkd.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint, set_rng_state
from xmkd.config import TeacherConfig
from xmkd.errors import XmkdError
from xmkd.evaluate import predict, score_students
from xmkd.train import ddp
from xmkd.train.distill import (
    _gather_rng,
    autocast_dtype,
    build_optimizer,
    build_scheduler,
    check_finite_losses,
    in_precision,
    seed_everything,
)
from xmkd.train.inputs import loader_options
from xmkd.train.progress import Progress

TEACHER_FILE = "teacher.pt"


@dataclass
class TeacherResult:
    path: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    #: accuracy on the Student-Train split (how right its labels for the students are)
    student_train_accuracy: float | None = None


def build_teacher(config: TeacherConfig, num_classes: int) -> nn.Module:
    """The TSN of a config; loads ``config.pretrained`` (torchvision ResNet keys) when given.

    The initial weights are drawn from ``config.seed`` (in a forked generator: the caller's
    random state is left as it was), so two runs of one config start from the same model
    wherever it is built; the CLI builds it before training to learn its input pipeline.
    """
    from xmkd.models import TSN

    partial_bn = config.partial_bn if config.partial_bn is not None else bool(config.pretrained)
    kwargs = dict(config.model_kwargs)
    kwargs.setdefault("partial_bn", partial_bn)
    if config.dropout is not None:
        kwargs.setdefault("dropout", config.dropout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = TSN(
            num_classes,
            modality=config.modality,
            num_segments=config.num_segments,
            backbone=config.backbone,
            **kwargs,
        )
    if config.pretrained:
        model.load_backbone_weights(config.pretrained)
    return model


def train_teacher(
    config: TeacherConfig,
    train_set: Dataset,
    class_names: Sequence[str],
    input_spec: dict[str, Any] | Any,
    run_dir: str | Path,
    eval_set: Dataset | None = None,
    resume: bool = False,
    progress_json: str | None = None,
    console: bool = True,
    model: nn.Module | None = None,
    ctx: ddp.DistContext | None = None,
) -> TeacherResult:
    """Train the teacher on ``train_set`` ((x, label, index) items) and evaluate on ``eval_set``."""
    run_dir = Path(run_dir)
    path = run_dir / TEACHER_FILE
    ctx = ctx or ddp.init_distributed(config.device)
    num_classes = len(class_names)
    batch = ddp.local_batch_size(config.batch_size, ctx)
    seed_everything(config.seed, config.deterministic)
    autocast = autocast_dtype(config.precision, ctx.device)
    if model is None:
        model = build_teacher(config, num_classes)
    model = model.to(ctx.device)
    optimizer = build_optimizer(config.optim, [p for p in model.parameters()])
    scheduler = build_scheduler(config.optim, optimizer, config.epochs)
    start_epoch, history = 0, []
    if resume:
        start_epoch, history = _resume(path, model, optimizer, scheduler, ctx)
    elif ctx.rank:
        torch.manual_seed(config.seed + 1000003 * ctx.rank)
    wrapped = ddp.wrap_model(model, ctx)
    sampler = ddp.make_sampler(train_set, ctx, shuffle=True, seed=config.seed)
    loader = DataLoader(
        train_set,
        batch_size=batch,
        sampler=sampler,
        **loader_options(config.data.num_workers, pin_memory=ctx.device.startswith("cuda")),
    )
    progress = Progress(run_dir, progress_json, enabled=ctx.is_main, console=console)
    progress.event(
        "start",
        run_dir=str(run_dir),
        config=config.to_dict(),
        epochs=config.epochs,
        start_epoch=start_epoch,
        steps_per_epoch=len(loader),
        samples=len(train_set),
        k=1,
        archs=["tsn"],
        world_size=ctx.world_size,
        device=ctx.device,
        resumed_from=str(path) if resume else None,
    )
    init_kwargs = dict(getattr(model, "init_kwargs", {}))
    t_run, step = time.perf_counter(), 0
    try:
        for epoch in range(start_epoch, config.epochs):
            t_epoch = time.perf_counter()
            sampler.set_epoch(epoch)
            if hasattr(train_set, "set_epoch"):  # seeded per-epoch augmentation (train.inputs)
                train_set.set_epoch(epoch)
            wrapped.train()
            sums = torch.zeros(2, dtype=torch.float64)  # loss, correct
            seen = torch.zeros((), dtype=torch.float64)
            first_bad = -1  # first step with a non-finite loss (the loss is synced per step)
            bar = progress.bar(len(loader), f"teacher epoch {epoch + 1}/{config.epochs}")
            for x, target, _index in loader:
                x = x.to(ctx.device, non_blocking=True)
                target = torch.as_tensor(target, dtype=torch.long).to(ctx.device)
                with in_precision(autocast, x.device.type):
                    logits = wrapped(x)
                loss = F.cross_entropy(logits.float(), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.optim.clip_grad_norm > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), config.optim.clip_grad_norm)
                optimizer.step()
                step += 1
                n = x.shape[0]
                correct = (logits.detach().argmax(dim=1) == target).double().sum()
                sums += torch.stack([loss.detach().double().cpu() * n, correct.cpu()])
                if first_bad < 0 and not torch.isfinite(sums[0]):
                    first_bad = step
                seen += n
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            progress.close_bar()
            if scheduler is not None:
                scheduler.step()
            ddp.all_reduce_sum(sums, ctx)
            ddp.all_reduce_sum(seen, ctx)
            check_finite_losses(
                {"the teacher": {"supervised": float(sums[0] / seen.clamp(min=1))}},
                epoch + 1,
                first_bad,
                path,
            )
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "losses": {"teacher": {"sup": float(sums[0] / seen.clamp(min=1))}},
                "train_accuracy": float(sums[1] / seen.clamp(min=1)),
                "lr": [optimizer.param_groups[0]["lr"]],
                "train_s": round(time.perf_counter() - t_epoch, 3),
            }
            history.append(record)
            rngs = _gather_rng(ctx)
            if ctx.is_main:
                save_checkpoint(
                    path,
                    _payload(config, model, init_kwargs, class_names, input_spec, record, {
                        "optimizers": [optimizer.state_dict()],
                        "schedulers": [scheduler.state_dict() if scheduler else None],
                        "rng": rngs,
                        "epoch": epoch + 1,
                        "step": step,
                        "history": history,
                        "world_size": ctx.world_size,
                    }),
                )  # fmt: skip
            ddp.barrier(ctx)
            elapsed = time.perf_counter() - t_run
            done = epoch + 1 - start_epoch
            progress.event(
                "epoch",
                **record,
                epoch_s=round(time.perf_counter() - t_epoch, 3),
                eta_s=round((config.epochs - epoch - 1) * elapsed / max(done, 1), 1),
                checkpoint=str(path),
            )
            progress.message(
                f"teacher epoch {epoch + 1}/{config.epochs}: loss "
                f"{record['losses']['teacher']['sup']:.3f}, train accuracy "
                f"{100 * record['train_accuracy']:.1f}%"
            )
        accuracy = None
        if eval_set is not None and ctx.is_main:
            accuracy = evaluate_teacher(model, eval_set, class_names, ctx.device, batch)
            data = load_checkpoint(path, kind="teacher")
            data["extra"]["student_train_accuracy"] = accuracy
            save_checkpoint(path, data)
            progress.event("eval", split="student_train", accuracy=accuracy)
        accuracy = ddp.broadcast_object(accuracy, ctx)
        progress.event(
            "end",
            checkpoint=str(path),
            student_train_accuracy=accuracy,
            elapsed_s=round(time.perf_counter() - t_run, 3),
        )
    finally:
        progress.close()
    return TeacherResult(path, history, accuracy)


def evaluate_teacher(
    model: nn.Module,
    dataset: Dataset,
    class_names: Sequence[str],
    device: str = "cpu",
    batch_size: int = 32,
) -> float | None:
    """Top-1 accuracy on the labeled items of ``dataset`` (None when none has a label)."""
    logits, targets, _ = predict([ddp.unwrap(model)], dataset, batch_size, device)
    if not (targets >= 0).any():
        return None
    return score_students(logits, targets, class_names).students[0].top1


def _payload(
    config: TeacherConfig,
    model: nn.Module,
    init_kwargs: dict[str, Any],
    class_names: Sequence[str],
    input_spec: Any,
    record: dict[str, Any],
    train: dict[str, Any] | None,
) -> dict[str, Any]:
    return make_checkpoint(
        "teacher",
        [("tsn", init_kwargs, ddp.unwrap(model))],
        list(class_names),
        input_spec,
        config=config.to_dict(),
        extra={"modality": config.modality, "epoch": record["epoch"]},
        train=train,
    )


def _resume(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    ctx: ddp.DistContext,
) -> tuple[int, list[dict[str, Any]]]:
    if not path.is_file():
        raise XmkdError(f"{path}: nothing to resume from (no teacher checkpoint there)")
    data = load_checkpoint(path, kind="teacher")
    train = data.get("train")
    if not train:
        raise XmkdError(f"{path}: has no training state to resume from")
    try:
        model.load_state_dict(data["models"][0]["state_dict"])
    except RuntimeError as exc:
        raise XmkdError(f"{path}: does not fit the configured teacher: {exc}") from exc
    optimizer.load_state_dict(train["optimizers"][0])
    if scheduler is not None and train["schedulers"][0] is not None:
        scheduler.load_state_dict(train["schedulers"][0])
    rngs = train["rng"]
    set_rng_state(rngs[ctx.rank] if ctx.rank < len(rngs) else rngs[0])
    return int(train["epoch"]), list(train["history"])
