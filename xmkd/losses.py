"""The losses of Thoker & Gall, section 3, one function per equation, and the label-noise study.

Notation: ``z`` are logits (N, C); ``P^tau = softmax(z / tau)`` (eq. 2). Every loss is a mean over
the batch (``batchmean`` for KL, i.e. a sum over classes and a mean over samples).

Two choices the paper leaves open, decided here and switchable:

* **KL argument order.** Eq. 1 writes ``KL(P_S, P_T) = sum_c P_S log(P_S / P_T)`` (student first),
  but the loss it takes from Hinton et al. [10], and Deep Mutual Learning [22] for the mutual term,
  minimise ``KL(P_T || P_S) = sum_c P_T log(P_T / P_S)`` (the target first; equal to the soft
  cross-entropy up to a constant, and what ``torch.nn.KLDivLoss(log P_S, P_T)`` computes). The
  default ``direction="target_first"`` follows the cited methods; ``direction="student_first"``
  computes eq. 1 literally.
* **tau^2.** Hinton scales the softened KL by ``tau^2`` because its gradient with respect to the
  logits shrinks as ``1/tau^2``; without it, the KL at tau = 10 learns ~100x more slowly than a CE
  term. The paper writes no ``tau^2`` in eq. 1 or eq. 6 but reports the KL baseline as "the loss of
  [10]", whose best temperature (Table 2, tau = 10) is only plausible with the scaling. So the
  teacher KL (eq. 1) applies ``tau^2`` by default (``KDConfig.tau_squared``), while the mutual term
  is kept exactly as eq. 6 writes it (no ``tau^2``; ``mutual_tau_squared=True`` adds it). As
  written, with tau = 10 both students' softened outputs are nearly uniform and the mutual term is
  tiny (see ``../shared/notes/field-facts.md``).

No label smoothing anywhere by default: it would flatten the teacher's soft outputs that the KL
variants learn from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

DIRECTIONS = ("target_first", "student_first")
SUPERVISIONS = ("ce", "kl", "full")


def softened(logits: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Eq. 2: ``P^tau(c) = exp(z_c / tau) / sum_d exp(z_d / tau)``."""
    return F.softmax(logits / tau, dim=1)


def kl_loss(
    student_logits: torch.Tensor,
    target_logits: torch.Tensor,
    tau: float = 1.0,
    tau_squared: bool = True,
    direction: str = "target_first",
) -> torch.Tensor:
    """Eq. 1: KL divergence between the softened student and target distributions (eq. 2).

    ``direction="target_first"`` (default): ``KL(P_T^tau || P_S^tau)`` as in Hinton et al. and DML;
    ``"student_first"``: ``sum_c P_S^tau log(P_S^tau / P_T^tau)``, eq. 1 read literally. With
    ``tau_squared`` the value is multiplied by ``tau^2`` (Hinton's gradient-scale correction). The
    target is used as given: detach it if no gradient should reach it.
    """
    log_s = F.log_softmax(student_logits / tau, dim=1)
    log_t = F.log_softmax(target_logits / tau, dim=1)
    if direction == "target_first":
        kl = (log_t.exp() * (log_t - log_s)).sum(dim=1)
    elif direction == "student_first":
        kl = (log_s.exp() * (log_s - log_t)).sum(dim=1)
    else:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    loss = kl.mean()
    return loss * (tau * tau) if tau_squared else loss


def teacher_ce_loss(student_logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ``CE(P_S, P_T) = -log P_S(argmax_c P_T(c))``, the teacher's hard decision as label.

    ``teacher`` is either the teacher's logits (N, C) or its already-taken argmax (N,).
    """
    labels = teacher.argmax(dim=1) if teacher.dim() == 2 else teacher
    return F.cross_entropy(student_logits, labels.long())


def supervised_ce_loss(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Full supervision with ground-truth (or noise-injected, Table 1) labels: ``-log P(y)``."""
    return F.cross_entropy(logits, labels.long(), label_smoothing=label_smoothing)


def mutual_loss(
    logits: Sequence[torch.Tensor],
    tau: float = 10.0,
    tau_squared: bool = False,
    direction: str = "target_first",
) -> list[torch.Tensor]:
    """Eq. 6, second term, for each of K students: ``1/(K-1) sum_{l != k} KL(P_k^tau, P_l^tau)``.

    The peers' distributions are detached, so student k's term moves only student k (as in Deep
    Mutual Learning). Returns one scalar per student; zeros when K = 1. Eq. 4 and eq. 5 are the
    K = 2 case.
    """
    k_students = len(logits)
    if k_students < 2:
        return [logits[0].new_zeros(()) for _ in logits]
    peers = [z.detach() for z in logits]
    terms = []
    for k, z in enumerate(logits):
        total = sum(
            kl_loss(z, peers[l], tau=tau, tau_squared=tau_squared, direction=direction)
            for l in range(k_students)
            if l != k
        )
        terms.append(total / (k_students - 1))
    return terms


def inject_label_noise(
    labels: np.ndarray | Sequence[int], fraction: float, num_classes: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Table 1: give ``round(fraction * N)`` randomly chosen samples a random WRONG label.

    Each chosen sample gets a label drawn uniformly from the other ``num_classes - 1`` classes, so
    exactly that fraction is wrong. Deterministic for a seed. Returns (noisy labels, changed mask).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the noise fraction must be within [0, 1], got {fraction}")
    if num_classes < 2 and fraction > 0:
        raise ValueError("label noise needs at least two classes")
    rng = np.random.default_rng(seed)
    count = int(round(fraction * len(labels)))
    chosen = rng.choice(len(labels), size=count, replace=False)
    noisy = labels.copy()
    # an offset in 1..C-1 modulo C never lands on the original class and is uniform over the rest
    noisy[chosen] = (labels[chosen] + rng.integers(1, num_classes, size=count)) % num_classes
    changed = np.zeros(len(labels), dtype=bool)
    changed[chosen] = True
    return noisy, changed


@dataclass
class StudentLoss:
    """The per-student training objective of eq. 6 (and its ablations), for K students at once.

    ``supervision``: ``"ce"`` eq. 3 on the teacher's argmax (the paper's proposal), ``"kl"`` eq. 1
    on the teacher's softened logits (Hinton's KD, Tables 2-3), ``"full"`` cross-entropy on labels
    (ground truth or noise-injected: the full-supervision baseline and Table 1). ``mutual`` adds
    eq. 6's peer term (off = "ensemble without mutual", Table 3).
    """

    supervision: str = "ce"
    mutual: bool = True
    kd_tau: float = 10.0
    kd_tau_squared: bool = True
    mutual_tau: float = 10.0
    mutual_tau_squared: bool = False
    direction: str = "target_first"
    mutual_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.supervision not in SUPERVISIONS:
            raise ValueError(f"supervision must be one of {SUPERVISIONS}, got {self.supervision!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")

    def __call__(
        self, logits: Sequence[torch.Tensor], target: torch.Tensor
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """Sum of every student's loss, and per student its ``sup``/``mutual``/``total`` parts.

        ``target``: the teacher's logits (N, C) for ``ce``/``kl``, labels (N,) for ``full``
        (``ce`` also accepts the teacher's argmax labels). Because peers are detached, the
        gradient of the sum with respect to student k is the gradient of student k's own loss,
        so one backward pass serves every student.
        """
        mutual = (
            mutual_loss(logits, self.mutual_tau, self.mutual_tau_squared, self.direction)
            if self.mutual and len(logits) > 1
            else [z.new_zeros(()) for z in logits]
        )
        parts = []
        total = logits[0].new_zeros(())
        for z, m in zip(logits, mutual):
            if self.supervision == "ce":
                sup = teacher_ce_loss(z, target)
            elif self.supervision == "kl":
                if target.dim() != 2:
                    raise ValueError("KL distillation needs the teacher's logits, not labels")
                sup = kl_loss(z, target.detach(), self.kd_tau, self.kd_tau_squared, self.direction)
            else:
                sup = supervised_ce_loss(z, target)
            loss = sup + self.mutual_weight * m
            parts.append({"sup": sup.detach(), "mutual": m.detach(), "total": loss.detach()})
            total = total + loss
        return total, parts
