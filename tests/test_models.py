"""Tests of the model zoo: students (ST-GCN, HCN) against the references, and the TSN teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xmkd.errors import CheckpointError
from xmkd.models import (
    STUDENT_ARCHS,
    TSN,
    TSNInputSpec,
    build_student,
    sample_segments,
    student_options,
    teacher_input,
)
from xmkd.models.hcn import HCN
from xmkd.models.resnet import resnet
from xmkd.models.stgcn import STGCN

torch.set_num_threads(1)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Reference layouts, written out from the references' structure (not from our modules).
def stgcn_reference_shapes(num_class: int = 60) -> dict[str, tuple[int, ...]]:
    """Every state_dict entry of yysijie/st-gcn's Model for NTU (spatial strategy, K=3)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, ch: int) -> None:
        shapes[f"{prefix}.weight"] = (ch,)
        shapes[f"{prefix}.bias"] = (ch,)
        shapes[f"{prefix}.running_mean"] = (ch,)
        shapes[f"{prefix}.running_var"] = (ch,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["A"] = (3, 25, 25)
    bn("data_bn", 75)
    plan = [(3, 64, 1), (64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2)]
    plan += [(128, 128, 1), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1)]
    for i, (cin, cout, stride) in enumerate(plan):
        p = f"st_gcn_networks.{i}"
        shapes[f"{p}.gcn.conv.weight"] = (3 * cout, cin, 1, 1)
        shapes[f"{p}.gcn.conv.bias"] = (3 * cout,)
        bn(f"{p}.tcn.0", cout)
        shapes[f"{p}.tcn.2.weight"] = (cout, cout, 9, 1)
        shapes[f"{p}.tcn.2.bias"] = (cout,)
        bn(f"{p}.tcn.3", cout)
        if i > 0 and (cin != cout or stride != 1):
            shapes[f"{p}.residual.0.weight"] = (cout, cin, 1, 1)
            shapes[f"{p}.residual.0.bias"] = (cout,)
            bn(f"{p}.residual.1", cout)
    for i in range(10):
        shapes[f"edge_importance.{i}"] = (3, 25, 25)
    shapes["fcn.weight"] = (num_class, 256, 1, 1)
    shapes["fcn.bias"] = (num_class,)
    return shapes


def hcn_reference_shapes(window: int = 32, num_class: int = 60) -> dict[str, tuple[int, ...]]:
    """Every state_dict entry of huguyuehuhu/HCN-pytorch's HCN (out_channel 64)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for s in ("", "m"):
        shapes[f"conv1{s}.0.weight"] = (64, 3, 1, 1)
        shapes[f"conv1{s}.0.bias"] = (64,)
        shapes[f"conv2{s}.weight"] = (window, 64, 3, 1)
        shapes[f"conv2{s}.bias"] = (window,)
        shapes[f"conv3{s}.0.weight"] = (32, 25, 3, 3)
        shapes[f"conv3{s}.0.bias"] = (32,)
        shapes[f"conv4{s}.0.weight"] = (64, 32, 3, 3)
        shapes[f"conv4{s}.0.bias"] = (64,)
    shapes["conv5.0.weight"] = (128, 128, 3, 3)
    shapes["conv5.0.bias"] = (128,)
    shapes["conv6.0.weight"] = (256, 128, 3, 3)
    shapes["conv6.0.bias"] = (256,)
    shapes["fc7.0.weight"] = (512, 256 * (window // 16) ** 2)
    shapes["fc7.0.bias"] = (512,)
    shapes["fc8.weight"] = (num_class, 512)
    shapes["fc8.bias"] = (num_class,)
    return shapes


def random_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.1
    return sd


def stgcn_reference_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode forward of the reference ST-GCN, written functionally from its description."""

    def bn(t, p):
        return F.batch_norm(
            t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"]
        )

    n, c, t, v, m = x.shape
    h = x.permute(0, 4, 3, 1, 2).contiguous().view(n * m, v * c, t)
    h = bn(h, "data_bn")
    h = h.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)
    strides = [1, 1, 1, 1, 2, 1, 1, 2, 1, 1]
    for i, stride in enumerate(strides):
        p = f"st_gcn_networks.{i}"
        a = sd["A"] * sd[f"edge_importance.{i}"]
        if i == 0:
            res = 0
        elif f"{p}.residual.0.weight" in sd:
            res = F.conv2d(h, sd[f"{p}.residual.0.weight"], sd[f"{p}.residual.0.bias"], (stride, 1))
            res = bn(res, f"{p}.residual.1")
        else:
            res = h
        y = F.conv2d(h, sd[f"{p}.gcn.conv.weight"], sd[f"{p}.gcn.conv.bias"])
        nm, kc, tt, vv = y.shape
        y = torch.einsum("nkctv,kvw->nctw", y.view(nm, 3, kc // 3, tt, vv), a)
        y = F.relu(bn(y, f"{p}.tcn.0"))
        y = F.conv2d(y, sd[f"{p}.tcn.2.weight"], sd[f"{p}.tcn.2.bias"], (stride, 1), (4, 0))
        y = bn(y, f"{p}.tcn.3")
        h = F.relu(y + res)
    h = F.avg_pool2d(h, h.size()[2:])
    h = h.view(n, m, -1, 1, 1).mean(dim=1)
    return F.conv2d(h, sd["fcn.weight"], sd["fcn.bias"]).view(n, -1)


def hcn_reference_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode forward of the reference HCN (person loop, then max), written functionally."""
    n, c, t, v, m = x.shape
    motion = x[:, :, 1:] - x[:, :, :-1]
    motion = motion.permute(0, 1, 4, 2, 3).contiguous().view(n, c * m, t - 1, v)
    motion = F.interpolate(motion, size=(t, v), mode="bilinear", align_corners=False)
    motion = motion.contiguous().view(n, c, m, t, v).permute(0, 1, 3, 4, 2)

    def stream(inp, s):
        h = F.relu(F.conv2d(inp, sd[f"conv1{s}.0.weight"], sd[f"conv1{s}.0.bias"]))
        h = F.conv2d(h, sd[f"conv2{s}.weight"], sd[f"conv2{s}.bias"], padding=(1, 0))
        h = h.permute(0, 3, 2, 1).contiguous()
        h = F.max_pool2d(
            F.conv2d(h, sd[f"conv3{s}.0.weight"], sd[f"conv3{s}.0.bias"], padding=1), 2
        )
        return F.max_pool2d(
            F.conv2d(h, sd[f"conv4{s}.0.weight"], sd[f"conv4{s}.0.bias"], padding=1), 2
        )

    outs = []
    for i in range(m):
        h = torch.cat((stream(x[..., i], ""), stream(motion[..., i], "m")), dim=1)
        h = F.max_pool2d(
            F.relu(F.conv2d(h, sd["conv5.0.weight"], sd["conv5.0.bias"], padding=1)), 2
        )
        h = F.max_pool2d(
            F.relu(F.conv2d(h, sd["conv6.0.weight"], sd["conv6.0.bias"], padding=1)), 2
        )
        outs.append(h)
    h = torch.max(outs[0], outs[1]).view(n, -1)
    h = F.relu(F.linear(h, sd["fc7.0.weight"], sd["fc7.0.bias"]))
    return F.linear(h, sd["fc8.weight"], sd["fc8.bias"])


# ---------------------------------------------------------------------------------------------
# ST-GCN
def test_stgcn_parameter_count_and_keys_match_reference():
    model = build_student("stgcn", 60)
    assert n_params(model) == 3_098_832
    assert sum(p.numel() for p in model.edge_importance) == 10 * 3 * 25 * 25
    expected = stgcn_reference_shapes(60)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(got) == 172
    assert got == expected


def test_stgcn_default_graph_is_reference_partition():
    model = STGCN(num_class=5, width=0.125)
    nonzero = (model.A != 0).sum(dim=(1, 2)).tolist()
    assert nonzero == [25, 40, 8]
    corrected = STGCN(num_class=5, width=0.125, graph_args={"corrected_partition": True})
    assert (corrected.A != 0).sum(dim=(1, 2)).tolist() == [25, 24, 24]
    assert "A" in dict(model.named_buffers())


def test_stgcn_loads_reference_checkpoint_and_gives_reference_outputs(tmp_path):
    sd = random_state_dict(stgcn_reference_shapes(60))
    # A is the graph, not a learned weight: keep the real one in the "published" file.
    sd["A"] = STGCN(num_class=60, width=0.125).A.clone()
    path = tmp_path / "st_gcn.ntu-xsub.pt"
    torch.save(sd, path)
    loaded = torch.load(path, weights_only=True)
    model = build_student("stgcn", 60)
    model.load_state_dict(loaded, strict=True)
    model.eval()
    x = torch.randn(2, 3, 12, 25, 2)
    with torch.no_grad():
        ours = model(x)
    assert ours.shape == (2, 60)
    torch.testing.assert_close(ours, stgcn_reference_forward(loaded, x), rtol=1e-4, atol=1e-5)


def test_stgcn_loads_checkpoint_without_num_batches_tracked(tmp_path):
    # Checkpoints saved by PyTorch < 0.4.1 (like the published ST-GCN ones) lack this buffer.
    sd = random_state_dict(stgcn_reference_shapes(10), seed=2)
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    sd["A"] = STGCN(num_class=10, width=0.125).A.clone()
    assert len(sd) == 172 - 23  # 23 BatchNorm layers
    model = build_student("stgcn", 10)
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = torch.randn(1, 3, 8, 25, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), stgcn_reference_forward(sd, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n,t,m", [(1, 16, 2), (3, 20, 1), (2, 7, 2)])
def test_stgcn_forward_shapes(n, t, m):
    model = build_student("stgcn", 7, width=0.125).eval()
    with torch.no_grad():
        out = model(torch.randn(n, 3, t, 25, m))
    assert out.shape == (n, 7)
    assert torch.isfinite(out).all()


def test_stgcn_width_and_options():
    small = build_student("stgcn", 60, width=0.25)
    assert n_params(small) < n_params(build_student("stgcn", 60)) / 8
    assert small.st_gcn_networks[0].tcn[2].out_channels == 16
    assert small.fcn.in_channels == 64
    plain = STGCN(num_class=60, edge_importance_weighting=False, width=0.25)
    assert n_params(plain) == n_params(small) - 18_750
    # First block: no residual, no dropout; later blocks: dropout 0.5.
    assert small.st_gcn_networks[0].tcn[4].p == 0.0
    assert small.st_gcn_networks[1].tcn[4].p == 0.5


def test_stgcn_init_is_reference():
    torch.manual_seed(0)
    model = build_student("stgcn", 60)
    w = model.st_gcn_networks[5].tcn[2].weight
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert torch.all(model.st_gcn_networks[5].tcn[2].bias == 0)
    bn = model.st_gcn_networks[9].tcn[3].weight
    assert abs(bn.mean().item() - 1.0) < 0.01 and 0.01 < bn.std().item() < 0.03


# ---------------------------------------------------------------------------------------------
# HCN
@pytest.mark.parametrize("window,count", [(32, 1_062_652), (64, 2_647_868)])
def test_hcn_parameter_count_and_keys_match_reference(window, count):
    model = build_student("hcn", 60, window_size=window)
    assert n_params(model) == count
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(got) == 24
    assert got == hcn_reference_shapes(window, 60)


def test_hcn_loads_reference_checkpoint_and_gives_reference_outputs(tmp_path):
    sd = random_state_dict(hcn_reference_shapes(32, 60), seed=1)
    path = tmp_path / "hcn.pth"
    torch.save(sd, path)
    model = build_student("hcn", 60, window_size=32)
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    model.eval()
    x = torch.randn(3, 3, 32, 25, 2)
    with torch.no_grad():
        ours = model(x)
    torch.testing.assert_close(ours, hcn_reference_forward(sd, x), rtol=1e-4, atol=1e-5)


def test_hcn_forward_shapes_width_and_window_check():
    model = build_student("hcn", 9, width=0.25, window_size=16).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 16, 25, 2)).shape == (2, 9)
        assert model(torch.randn(1, 3, 16, 25, 1)).shape == (1, 9)
    assert n_params(model) < n_params(build_student("hcn", 9, window_size=16)) / 4
    assert model.conv1[0].out_channels == 16 and model.conv3[0].out_channels == 8
    with pytest.raises(ValueError, match="windows of 16 frames"):
        model(torch.randn(1, 3, 20, 25, 2))
    with pytest.raises(ValueError, match="multiple of 16"):
        HCN(window_size=40)


def test_hcn_init_is_glorot_uniform_zero_bias():
    model = build_student("hcn", 60)
    w = model.conv5[0].weight
    bound = (6.0 / (128 * 9 + 128 * 9)) ** 0.5
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.9 * bound
    assert all(
        torch.all(m.bias == 0) for m in model.modules() if hasattr(m, "bias") and m.bias is not None
    )
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


# ---------------------------------------------------------------------------------------------
# Registry and training
def test_build_student_registry_round_trip():
    assert set(STUDENT_ARCHS) == {"stgcn", "hcn"}
    record = {"arch": "hcn", "kwargs": {"width": 0.25, "window_size": 16}}
    a = build_student(record["arch"], 5, **record["kwargs"])
    b = build_student(record["arch"], 5, **record["kwargs"])
    b.load_state_dict(a.state_dict())
    assert "width" in student_options("stgcn") and "window_size" in student_options("hcn")
    with pytest.raises(ValueError, match="unknown student architecture"):
        build_student("resnet", 5)
    with pytest.raises(ValueError, match="unknown option"):
        build_student("stgcn", 5, window_size=32)


@pytest.mark.parametrize(
    "arch,kwargs,t",
    [("stgcn", {"width": 0.125}, 12), ("hcn", {"width": 0.25, "window_size": 16}, 16)],
)
def test_one_gradient_step_reduces_loss(arch, kwargs, t):
    torch.manual_seed(0)
    model = build_student(arch, 4, dropout=0.0, **kwargs)
    x = torch.randn(8, 3, t, 25, 2)
    y = torch.arange(8) % 4
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    before = F.cross_entropy(model(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        # Same batch, still in train mode (dropout is off, BN uses the batch's statistics).
        after = F.cross_entropy(model(x), y).item()
    assert after < before.item()


# ---------------------------------------------------------------------------------------------
# TSN teacher and its ResNet backbone


def torchvision_resnet18_shapes(num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """torchvision.models.resnet18().state_dict() layout, written out from torchvision's model."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, ch: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (ch,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    inplanes = 64
    for layer, planes in zip((1, 2, 3, 4), (64, 128, 256, 512)):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            cin = inplanes if block == 0 else planes
            shapes[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            if block == 0 and layer > 1:
                shapes[f"{p}.downsample.0.weight"] = (planes, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes)
        inplanes = planes
    shapes["fc.weight"] = (num_classes, 512)
    shapes["fc.bias"] = (num_classes,)
    return shapes


def test_resnet_matches_torchvision_layout_and_sizes():
    model = resnet("resnet18")
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == list(torchvision_resnet18_shapes().items())  # same keys, shapes and order
    assert len(got) == 122
    # torchvision's parameter counts (ImageNet heads).
    assert n_params(model) == 11_689_512
    assert n_params(resnet("resnet34")) == 21_797_672
    r50 = resnet("resnet50")
    assert n_params(r50) == 25_557_032
    assert tuple(r50.state_dict()["layer1.0.conv3.weight"].shape) == (256, 64, 1, 1)
    assert tuple(r50.state_dict()["layer1.0.downsample.0.weight"].shape) == (256, 64, 1, 1)


def imagenet_like_file(tmp_path, seed: int = 0):
    sd = random_state_dict(torchvision_resnet18_shapes(), seed=seed)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(sd, path)
    return sd, path


@pytest.mark.parametrize("modality,channels", [("rgb", 3), ("flow", 10), ("rgbdiff", 15)])
def test_tsn_loads_torchvision_weights_with_cross_modality_init(tmp_path, modality, channels):
    sd, path = imagenet_like_file(tmp_path)
    model = TSN(5, modality=modality)
    assert model.in_channels == channels
    skipped = model.load_backbone_weights(path)
    assert skipped == ["fc.bias", "fc.weight"]
    own = model.base_model.state_dict()
    torch.testing.assert_close(
        own["layer3.0.downsample.0.weight"], sd["layer3.0.downsample.0.weight"]
    )
    conv1 = own["conv1.weight"]
    assert conv1.shape == (64, channels, 7, 7)
    if modality == "rgb":
        torch.testing.assert_close(conv1, sd["conv1.weight"])
    else:
        # Every input channel gets the average of the RGB kernels (TSN's cross-modality init).
        avg = sd["conv1.weight"].mean(dim=1)
        for c in range(channels):
            torch.testing.assert_close(conv1[:, c], avg)


def test_tsn_rgbdiff_keep_rgb_first_conv():
    model = TSN(5, modality="rgbdiff", new_length=2, keep_rgb=True, width=0.25)
    rgb = torch.randn(16, 3, 7, 7)
    w = model.first_conv_from_rgb(rgb)
    assert w.shape == (16, 9, 7, 7)
    torch.testing.assert_close(w[:, :3], rgb)
    torch.testing.assert_close(w[:, 5], rgb.mean(dim=1))


def test_tsn_weight_file_errors_are_clear(tmp_path):
    model = TSN(5, modality="flow", width=0.5)
    with pytest.raises(CheckpointError, match="not found"):
        model.load_backbone_weights(tmp_path / "nope.pth")
    _, path = imagenet_like_file(tmp_path)
    with pytest.raises(CheckpointError, match="width 1.0 only"):
        model.load_backbone_weights(path)
    r34 = tmp_path / "r34.pth"
    torch.save(resnet("resnet34", width=0.5).state_dict(), r34)
    with pytest.raises(CheckpointError, match="torchvision resnet18"):
        model.load_backbone_weights(r34)
    pickled = tmp_path / "pickled.pth"
    torch.save({"model": resnet("resnet18", width=0.5)}, pickled)  # a whole module: refused
    with pytest.raises(CheckpointError, match="not a loadable weights file"):
        model.load_backbone_weights(pickled)
    wrapped = tmp_path / "wrapped.pth"
    sd = resnet("resnet18", width=0.5).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, wrapped)
    model.load_backbone_weights(wrapped)


def test_tsn_partial_bn_freezes_all_but_first():
    torch.manual_seed(0)
    model = TSN(4, modality="rgb", width=0.25)
    bns = [m for m in model.base_model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not bns[3].training  # frozen from construction on
    model.eval()
    model.train()
    assert bns[0].training and bns[0].weight.requires_grad
    assert all(
        not b.training and not b.weight.requires_grad and not b.bias.requires_grad for b in bns[1:]
    )
    first_mean = bns[0].running_mean.clone()
    later_mean = bns[5].running_mean.clone()
    model(torch.randn(2, 3, 3, 32, 32) + 1.0)
    assert not torch.equal(bns[0].running_mean, first_mean)
    assert torch.equal(bns[5].running_mean, later_mean)
    assert model.base_model.fc.p == 0.8 and isinstance(model.base_model.fc, torch.nn.Dropout)
    free = TSN(4, modality="rgb", width=0.25, partial_bn=False).train()
    assert all(m.training for m in free.modules())
    model.eval()
    assert all(not m.training for m in model.modules())
    assert not bns[5].weight.requires_grad  # stays frozen in eval mode too (DDP-safe)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert id(bns[0].weight) in trainable and id(bns[1].weight) not in trainable


@pytest.mark.parametrize("modality", ["rgb", "rgbdiff", "flow"])
def test_tsn_forward_is_average_consensus(modality):
    model = TSN(6, modality=modality, width=0.125, num_segments=3).eval()
    x = torch.randn(2, 4, model.in_channels, 48, 48)  # any K works at test time
    with torch.no_grad():
        out = model(x)
        seg = model.segment_logits(x)
    assert out.shape == (2, 6) and seg.shape == (2, 4, 6)
    torch.testing.assert_close(out, seg.mean(dim=1))
    with pytest.raises(ValueError, match="expects input"):
        model(torch.randn(2, 3, model.in_channels + 1, 48, 48))
    rebuilt = TSN(6, **model.init_kwargs)
    rebuilt.load_state_dict(model.state_dict())


def test_segment_sampling_follows_tsn():
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = sample_segments(90, 3, span=1, train=True, rng=rng)[:, 0]
        assert 0 <= idx[0] < 30 <= idx[1] < 60 <= idx[2] < 90
    np.testing.assert_array_equal(sample_segments(90, 3, 1, train=False)[:, 0], [15, 45, 75])
    snip = sample_segments(20, 3, span=6, train=False)
    assert snip.shape == (3, 6) and np.all(np.diff(snip, axis=1) == 1)
    short = sample_segments(4, 3, span=5, train=True, rng=rng)
    assert short.max() == 3  # snippets past the end repeat the last frame
    with pytest.raises(ValueError, match="no frames"):
        sample_segments(0, 3)


def test_teacher_input_shapes_normalisation_and_stacking():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(40, 72, 96, 3), dtype=np.uint8)
    spec = TSNInputSpec(modality="rgb", scale_size=64, crop_size=56)
    x = teacher_input(frames, spec)
    assert x.shape == (3, 3, 56, 56) and x.dtype == torch.float32
    const = np.full((40, 64, 64, 3), 128, dtype=np.uint8)
    diff_spec = TSNInputSpec(
        modality="rgbdiff", new_length=2, keep_rgb=True, scale_size=None, crop_size=64
    )
    d = teacher_input(const, diff_spec, train=True, rng=rng)
    assert d.shape == (3, 9, 64, 64)
    assert torch.all(d[:, 3:] == 0)  # a still clip has zero RGB differences
    red = (128 / 255 - 0.485) / 0.229
    torch.testing.assert_close(d[:, 0], torch.full((3, 64, 64), red))
    a = teacher_input(frames, spec.replace(crop_size=48), train=True, rng=np.random.default_rng(3))
    b = teacher_input(frames, spec.replace(crop_size=48), train=True, rng=np.random.default_rng(3))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"frames \(T, H, W, 2\)"):
        teacher_input(frames, TSNInputSpec(modality="flow"))


def test_flow_input_stacks_xy_and_flip_inverts_x():
    flow = np.zeros((30, 32, 32, 2), dtype=np.uint8)
    flow[..., 0] = 200  # moving in +x
    flow[..., 1] = 100
    spec = TSNInputSpec(modality="flow", scale_size=None, crop_size=32, scales=(1.0,))
    x = teacher_input(flow, spec)
    assert x.shape == (3, 10, 32, 32)
    fx = (200 / 255 - 0.5) / float(np.mean([0.229, 0.224, 0.225]))
    assert torch.allclose(x[:, 0::2], torch.tensor(fx)) and torch.all(x[:, 1::2] < 0)
    flips = set()
    for seed in range(12):
        t = teacher_input(flow, spec, train=True, rng=np.random.default_rng(seed))
        assert torch.allclose(t[:, 1::2], x[:, 1::2])
        flips.add(round(float(t[0, 0, 0, 0]), 4))
    fx_flipped = ((255 - 200) / 255 - 0.5) / float(np.mean([0.229, 0.224, 0.225]))
    assert flips == {round(fx, 4), round(fx_flipped, 4)}


def test_small_tsn_gradient_step_reduces_loss():
    torch.manual_seed(0)
    model = TSN(3, modality="rgbdiff", new_length=2, width=0.25, dropout=0.0, partial_bn=False)
    model.train()
    x = torch.randn(6, 3, model.in_channels, 32, 32)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = F.cross_entropy(model(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = F.cross_entropy(model(x), y).item()
    assert after < before.item()


def test_small_stem_for_low_resolution_frames(tmp_path):
    model = TSN(4, modality="rgbdiff", new_length=2, keep_rgb=True, width=0.25, stem="small")
    assert tuple(model.base_model.conv1.weight.shape) == (16, 9, 3, 3)
    # Only the stem differs from torchvision's layout: every other key is the same.
    ref = TSN(4, modality="rgbdiff", new_length=2, keep_rgb=True, width=0.25)
    assert list(model.state_dict()) == list(ref.state_dict())
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 9, 64, 64)).shape == (2, 4)
    _, path = imagenet_like_file(tmp_path)
    with pytest.raises(CheckpointError, match="'imagenet' stem"):
        TSN(4, modality="rgb", stem="small").load_backbone_weights(path)
    with pytest.raises(ValueError, match="unknown ResNet stem"):
        resnet("resnet18", stem="tiny")


def test_a_teacher_config_builds_the_same_initial_model_every_time():
    """The CLI builds the teacher before training seeds the run (to learn its input pipeline):
    its initial weights must come from the config's seed, or two runs of one config differ
    (they did, measured: different teacher.pt from identical commands)."""
    from xmkd.config import TeacherConfig
    from xmkd.train.teacher import build_teacher

    config = TeacherConfig(model_kwargs={"width": 0.125})
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = build_teacher(config, 5).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    torch.manual_seed(456)
    b = build_teacher(config, 5).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = build_teacher(TeacherConfig(model_kwargs={"width": 0.125}, seed=1), 5).state_dict()
    assert not all(torch.equal(a[k], other[k]) for k in a)
