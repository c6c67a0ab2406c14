"""Tests of the shared skeleton window preprocessing (xmkd.preprocess)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xmkd.preprocess import (
    InputSpec,
    crop_range,
    default_input_spec,
    prepare_batch,
    prepare_window,
)
from xmkd.skeleton import ORIGIN_JOINT, flip_permutation

torch.set_num_threads(1)


def make_clip(valid: int = 80, total: int = 300, second: int = 50, seed: int = 0) -> np.ndarray:
    """Zero-padded (3, total, 25, 2) clip: person 0 for `valid` frames, person 1 for `second`."""
    rng = np.random.default_rng(seed)
    clip = np.zeros((3, total, 25, 2), dtype=np.float32)
    base = np.array([0.2, 0.1, 3.0], dtype=np.float32)[:, None, None]
    clip[:, :valid, :, 0] = base + rng.normal(0, 0.3, size=(3, valid, 25))
    clip[:, :second, :, 1] = base + 0.8 + rng.normal(0, 0.3, size=(3, second, 25))
    return clip


def test_defaults_reproduce_the_references():
    st = default_input_spec("stgcn")
    assert (st.window, st.fit, st.center) == (300, "pad", "none")
    hcn = default_input_spec("hcn")
    assert (hcn.window, hcn.fit, hcn.center) == (32, "crop_resize", "frame")
    assert st.keep_absent_zero and not hcn.keep_absent_zero
    assert hcn.train_crop == (0.5, 1.0) and hcn.test_crop == 0.95 and hcn.min_crop_frames == 64
    assert not st.augments and not hcn.augments
    assert default_input_spec("hcn", window=16).window == 16
    with pytest.raises(ValueError, match="no default input spec"):
        default_input_spec("tsn")


def test_spec_round_trips_and_validates(tmp_path):
    spec = default_input_spec("hcn", rotate_deg=10.0, jitter_std=0.01)
    path = tmp_path / "spec.pt"
    torch.save(spec.to_dict(), path)
    assert InputSpec.from_dict(torch.load(path, weights_only=True)) == spec
    with pytest.raises(ValueError, match="unknown input spec field"):
        InputSpec.from_dict({"window": 32, "bogus": 1})
    with pytest.raises(ValueError, match="fit must be one of"):
        InputSpec(fit="stretch")
    with pytest.raises(ValueError, match="train_crop"):
        InputSpec(train_crop=(0.9, 0.5))


def test_pad_keeps_valid_frames_and_zero_pads():
    clip = make_clip(valid=80)
    out = prepare_window(clip, 80, default_input_spec("stgcn"))
    assert out.shape == (3, 300, 25, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :80], clip[:, :80])
    assert np.all(out[:, 80:] == 0)
    # A shorter window truncates; a clip stored with fewer frames is padded up.
    short = prepare_window(clip, 80, InputSpec(window=40))
    np.testing.assert_array_equal(short, clip[:, :40])
    grown = prepare_window(clip[:, :80], 80, InputSpec(window=100))
    assert grown.shape[1] == 100 and np.all(grown[:, 80:] == 0)


def test_resize_resamples_only_the_valid_frames():
    # A linear ramp in time stays a ramp over the same range after resampling.
    clip = np.zeros((3, 300, 25, 1), dtype=np.float32)
    clip[0, :60] = np.linspace(1.0, 60.0, 60, dtype=np.float32)[:, None, None]
    clip[1:, :60] = 1.0
    out = prepare_window(clip, 60, InputSpec(window=30, fit="resize", num_persons=1))
    assert out.shape == (3, 30, 25, 1)
    ramp = out[0, :, 0, 0]
    np.testing.assert_allclose(np.diff(ramp), 2.0, atol=1e-5)  # 60 frames -> 30: step 2
    assert np.all(out[1:] == 1.0)  # no padding zeros leak in
    # Upsampling 10 valid frames to 40 never reads the zero padding either.
    up = prepare_window(clip, 10, InputSpec(window=40, fit="resize", num_persons=1))
    assert up[0, :, 0, 0].min() >= 1.0 and up[0, :, 0, 0].max() <= 10.0


def test_hcn_default_reproduces_reference_pipeline():
    """HCN-pytorch test-time: origin_transfer=0 on the whole array, centre crop 0.95, resize."""
    clip = make_clip(valid=90, second=40)
    o = ORIGIN_JOINT - 1
    centred = clip - clip[:, :, o, 0][:, :, None, None]  # every entry, absent persons included
    bias = int((1 - 0.95) * 90 / 2)
    seg = torch.from_numpy(centred[:, bias : 90 - bias]).permute(0, 2, 3, 1).reshape(150, -1)
    ref = F.interpolate(seg[None, :, :, None], size=(32, 1), mode="bilinear", align_corners=False)
    ref = ref[0, :, :, 0].view(3, 25, 2, 32).permute(0, 3, 1, 2).numpy()
    out = prepare_window(clip, 90, default_input_spec("hcn"))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # The absent second person is minus person 0's origin there, as in the reference.
    assert not np.allclose(out[..., 1][:, -5:], 0)


def test_hcn_resize_matches_reference_bilinear_interpolation():
    clip = make_clip(valid=90)
    spec = default_input_spec("hcn", center="none")
    out = prepare_window(clip, 90, spec)
    start, length = crop_range(90, spec, train=False)
    assert (start, length) == (2, 86)  # int(0.05 * 90 / 2) = 2 frames off each end
    # The reference: (C*V*M, L) image, F.interpolate bilinear to (C*V*M, window).
    seg = (
        torch.from_numpy(clip[:, start : start + length])
        .permute(0, 2, 3, 1)
        .reshape(1, 1, -1, length)
    )
    ref = F.interpolate(seg, size=(seg.shape[2], 32), mode="bilinear", align_corners=False)
    ref = ref.view(3, 25, 2, 32).permute(0, 3, 1, 2).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_centering_subtracts_origin_of_person0_and_keeps_absent_zero():
    clip = make_clip(valid=80, second=50)
    spec = InputSpec(window=100, fit="pad", center="frame")
    out = prepare_window(clip, 80, spec)
    o = ORIGIN_JOINT - 1
    assert np.allclose(out[:, :80, o, 0], 0.0)
    np.testing.assert_allclose(
        out[:, :50, :, 1], clip[:, :50, :, 1] - clip[:, :50, o : o + 1, 0], atol=1e-6
    )
    assert np.all(out[:, 50:, :, 1] == 0)  # person 1 absent after frame 50
    assert np.all(out[:, 80:] == 0)  # padding stays zero
    first = prepare_window(clip, 80, spec.replace(center="first"))
    np.testing.assert_allclose(
        first[:, 5, :, 0], clip[:, 5, :, 0] - clip[:, 0, o : o + 1, 0], atol=1e-6
    )
    # Reference ST-GCN does no normalisation at all.
    raw = prepare_window(clip, 80, InputSpec(window=100))
    np.testing.assert_array_equal(raw[:, :80], clip[:, :80])


@pytest.mark.parametrize("valid", [200, 90, 40])
def test_hcn_train_crop_ratio_bounds(valid):
    spec = default_input_spec("hcn")
    rng = np.random.default_rng(0)
    lengths = []
    for _ in range(300):
        start, length = crop_range(valid, spec, train=True, rng=rng)
        assert 0 <= start and start + length <= valid
        lengths.append(length)
    lo = min(max(int(np.floor(valid * 0.5)), 64), valid)
    assert min(lengths) >= lo and max(lengths) <= valid
    if valid == 200:  # spans the range when the clip is long enough
        assert min(lengths) < 110 and max(lengths) > 190
    if valid <= 64:  # the reference keeps at least 64 frames: a short clip is never cropped
        assert set(lengths) == {valid}
    small = spec.replace(min_crop_frames=1)
    got = [crop_range(40, small, True, rng)[1] for _ in range(200)]
    assert min(got) >= 20 and max(got) <= 40 and len(set(got)) > 5


def test_seeded_rng_is_deterministic_and_train_differs_from_test():
    clip = make_clip(valid=200)
    spec = default_input_spec("hcn", rotate_deg=30.0, scale=0.1, jitter_std=0.01, flip_prob=0.5)
    a = prepare_window(clip, 200, spec, train=True, rng=np.random.default_rng(7))
    b = prepare_window(clip, 200, spec, train=True, rng=np.random.default_rng(7))
    c = prepare_window(clip, 200, spec, train=True, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    t1 = prepare_window(clip, 200, spec, train=False)
    t2 = prepare_window(clip, 200, spec, train=False)
    np.testing.assert_array_equal(t1, t2)


def test_augmentations_behave():
    clip = make_clip(valid=64, second=64)
    base = InputSpec(window=64, fit="pad", center="frame")
    plain = prepare_window(clip, 64, base)
    flipped = prepare_window(
        clip, 64, base.replace(flip_prob=1.0), train=True, rng=np.random.default_rng(0)
    )
    np.testing.assert_allclose(flipped[0], -plain[0][:, flip_permutation()], atol=1e-6)
    np.testing.assert_allclose(flipped[1:], plain[1:][:, :, flip_permutation()], atol=1e-6)
    rotated = prepare_window(
        clip, 64, base.replace(rotate_deg=45.0), train=True, rng=np.random.default_rng(0)
    )
    # A rotation about the vertical axis keeps heights and horizontal distances to the origin.
    np.testing.assert_allclose(rotated[1], plain[1], atol=1e-5)
    np.testing.assert_allclose(
        np.hypot(rotated[0], rotated[2]), np.hypot(plain[0], plain[2]), atol=1e-5
    )
    assert not np.allclose(rotated[0], plain[0])


def test_persons_are_padded_or_dropped():
    one = make_clip(valid=30)[..., :1]
    out = prepare_window(one, 30, InputSpec(window=30))
    assert out.shape == (3, 30, 25, 2) and np.all(out[..., 1] == 0)
    three = np.concatenate([make_clip(valid=30), make_clip(valid=30, seed=1)[..., :1]], axis=-1)
    assert prepare_window(three, 30, InputSpec(window=30)).shape[-1] == 2
    with pytest.raises(ValueError, match="expected a skeleton clip"):
        prepare_window(np.zeros((3, 10, 17, 2)), 10, InputSpec())


@pytest.mark.parametrize(
    "spec",
    [
        default_input_spec("stgcn", window=120),
        default_input_spec("hcn"),
        default_input_spec("hcn", center="first"),
        InputSpec(window=24, fit="resize", center="frame"),
    ],
)
def test_batched_torch_path_matches_numpy(spec):
    clips = np.stack(
        [
            make_clip(valid=v, total=150, second=s, seed=v)
            for v, s in [(150, 0), (77, 40), (5, 5), (0, 0)]
        ]
    )
    valid = [150, 77, 5, 0]
    got = prepare_batch(torch.from_numpy(clips), spec, torch.tensor(valid)).numpy()
    want = np.stack([prepare_window(c, f, spec) for c, f in zip(clips, valid)])
    assert got.shape == (4, 3, spec.window, 25, 2)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.all(got[3] == 0)  # a clip without frames gives an empty window


def test_student_kwargs_make_hcn_accept_the_spec_window():
    from xmkd.models import build_student
    from xmkd.preprocess import student_kwargs

    spec = default_input_spec("hcn", window=16)
    model = build_student("hcn", 3, width=0.25, **student_kwargs("hcn", spec)).eval()
    window = prepare_window(make_clip(valid=40), 40, spec)
    with torch.no_grad():
        assert model(torch.from_numpy(window)[None]).shape == (1, 3)
    assert student_kwargs("stgcn", default_input_spec("stgcn")) == {}
