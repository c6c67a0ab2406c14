"""The paper's losses (section 3) against values worked out by hand, and label-noise injection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xmkd.losses import (
    StudentLoss,
    inject_label_noise,
    kl_loss,
    mutual_loss,
    softened,
    supervised_ce_loss,
    teacher_ce_loss,
)

LN2, LN3 = math.log(2.0), math.log(3.0)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_softened_eq2():
    # z = [2 ln 3, 0] at tau = 2 -> exp(z/2) = [3, 1] -> [3/4, 1/4]
    assert torch.allclose(softened(t([2 * LN3, 0.0]), tau=2.0), t([0.75, 0.25]))


def test_teacher_ce_eq3_uses_the_teachers_argmax():
    # P_S = [1, 2, 3] / 6; teacher argmax = class 2 -> -log(3/6) = ln 2 = 0.693147
    student = t([0.0, LN2, LN3])
    teacher = t([0.0, 0.0, 5.0])
    assert teacher_ce_loss(student, teacher).item() == pytest.approx(0.693147, abs=1e-6)
    # the teacher's confidence does not matter, only its decision
    assert teacher_ce_loss(student, t([0.0, 0.0, 0.1])).item() == pytest.approx(0.693147, 1e-6)
    # argmax labels given directly; and full supervision on class 0: -log(1/6) = 1.791759
    assert teacher_ce_loss(student, torch.tensor([2])).item() == pytest.approx(0.693147, 1e-6)
    assert supervised_ce_loss(student, torch.tensor([0])).item() == pytest.approx(1.791759, 1e-6)


def test_kl_eq1_both_directions_and_tau_squared():
    # P_S = [1/2, 1/2], P_T = [3/4, 1/4]
    s, teach = t([0.0, 0.0]), t([LN3, 0.0])
    # KL(P_T || P_S) = 0.75 ln 1.5 + 0.25 ln 0.5 = 0.130812
    assert kl_loss(s, teach, tau=1.0).item() == pytest.approx(0.130812, abs=1e-6)
    # eq. 1 literally: sum P_S log(P_S / P_T) = 0.5 ln(2/3) + 0.5 ln 2 = 0.143841
    lit = kl_loss(s, teach, tau=1.0, direction="student_first")
    assert lit.item() == pytest.approx(0.143841, abs=1e-6)
    # tau = 2 with teacher logits doubled gives the same softened P_T; tau^2 = 4 scales it
    assert kl_loss(s, t([2 * LN3, 0.0]), tau=2.0).item() == pytest.approx(0.523248, abs=1e-6)
    no_sq = kl_loss(s, t([2 * LN3, 0.0]), tau=2.0, tau_squared=False)
    assert no_sq.item() == pytest.approx(0.130812, abs=1e-6)
    # batchmean: a batch of [that sample, a perfect match] halves it
    batch = kl_loss(t([0.0, 0.0], [1.0, 2.0]), t([LN3, 0.0], [1.0, 2.0]), tau=1.0)
    assert batch.item() == pytest.approx(0.065406, abs=1e-6)
    with pytest.raises(ValueError):
        kl_loss(s, teach, direction="sideways")


def test_mutual_eq6_three_students():
    # a = [1/2, 1/2], b = [3/4, 1/4], c = [1/4, 3/4] at tau = 1
    a, b, c = t([0.0, 0.0]), t([LN3, 0.0]), t([0.0, LN3])
    terms = mutual_loss([a, b, c], tau=1.0)
    # a: (KL(b||a) + KL(c||a)) / 2 = 0.130812 (both equal by symmetry)
    assert terms[0].item() == pytest.approx(0.130812, abs=1e-6)
    # b: (KL(a||b) + KL(c||b)) / 2 = (0.143841 + 0.5 ln 3) / 2 = 0.346574
    assert terms[1].item() == pytest.approx(0.346574, abs=1e-6)
    assert terms[2].item() == pytest.approx(0.346574, abs=1e-6)
    # K = 1: no peers, zero
    assert mutual_loss([a])[0].item() == 0.0
    # as written (tau = 10, no tau^2) the term is tiny for moderately different students
    tiny = mutual_loss([t([0.0, 0.0]), t([LN3, 0.0])], tau=10.0)[0].item()
    scaled = mutual_loss([t([0.0, 0.0]), t([LN3, 0.0])], tau=10.0, tau_squared=True)[0].item()
    assert tiny < 2e-3 and scaled == pytest.approx(100 * tiny)


def test_mutual_detaches_peers():
    torch.manual_seed(0)
    z1 = torch.randn(4, 5, requires_grad=True)
    z2 = torch.randn(4, 5, requires_grad=True)
    terms = mutual_loss([z1, z2], tau=2.0)
    terms[0].backward()
    assert z1.grad is not None and z1.grad.abs().sum() > 0
    assert z2.grad is None  # student 1's term sends nothing into its peer
    # and through StudentLoss: the gradient of the sum for student 1 is its own loss' gradient
    z1.grad = None
    teacher = torch.randn(4, 5)
    loss = StudentLoss(supervision="kl", kd_tau=4.0, mutual_tau=2.0)
    total, parts = loss([z1, z2], teacher)
    total.backward()
    own = kl_loss(z1, teacher, tau=4.0) + mutual_loss([z1, z2.detach()], tau=2.0)[0]
    g_own = torch.autograd.grad(own, z1)[0]
    assert torch.allclose(z1.grad, g_own)
    assert set(parts[0]) == {"sup", "mutual", "total"}


def test_student_loss_modes():
    a, b = t([0.0, LN2, LN3]), t([0.0, 0.0, 0.0])
    teacher = t([0.0, 0.0, 5.0])
    # CE + mutual, K=2: CE_a = ln 2, CE_b = ln 3; mutual (tau 10, no tau^2) is small but non-zero
    total, parts = StudentLoss("ce", mutual=True)([a, b], teacher)
    assert parts[0]["sup"].item() == pytest.approx(LN2, abs=1e-9)
    assert parts[1]["sup"].item() == pytest.approx(LN3, abs=1e-9)
    assert 0 < parts[0]["mutual"].item() < 1e-2
    assert total.item() == pytest.approx(sum(p["total"].item() for p in parts), abs=1e-9)
    # without mutual ("ensemble without mutual"): only the CE terms
    total, parts = StudentLoss("ce", mutual=False)([a, b], teacher)
    assert total.item() == pytest.approx(LN2 + LN3, abs=1e-9)
    # full supervision on labels
    total, _ = StudentLoss("full", mutual=False)([a], torch.tensor([1]))
    assert total.item() == pytest.approx(-math.log(2 / 6), abs=1e-9)
    with pytest.raises(ValueError, match="supervision"):
        StudentLoss("mse")


def test_label_noise_fraction_and_wrongness():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, size=1000)
    noisy, changed = inject_label_noise(labels, 0.14, num_classes=10, seed=3)
    assert changed.sum() == 140
    assert np.all(noisy[changed] != labels[changed])  # every chosen label is WRONG
    assert np.array_equal(noisy[~changed], labels[~changed])
    assert noisy.min() >= 0 and noisy.max() <= 9
    again, _ = inject_label_noise(labels, 0.14, num_classes=10, seed=3)
    assert np.array_equal(noisy, again)  # seeded
    other, _ = inject_label_noise(labels, 0.14, num_classes=10, seed=4)
    assert not np.array_equal(noisy, other)
    # the wrong labels spread over all other classes, not a fixed shift
    offsets = (noisy[changed] - labels[changed]) % 10
    assert len(np.unique(offsets)) >= 8
    assert inject_label_noise(labels, 0.0, 10)[1].sum() == 0
    with pytest.raises(ValueError):
        inject_label_noise(labels, 1.5, 10)
