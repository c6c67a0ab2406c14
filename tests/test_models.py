"""Tests of the model zoo: students (ST-GCN, HCN) against the references, and the TSN teacher."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xmkd.models import STUDENT_ARCHS, build_student, student_options
from xmkd.models.hcn import HCN
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
