"""torchvision video teachers (``torchvision:ARCH``): weights files load bit-exactly into
torchvision's own networks, the input pipeline is torchvision's (spatial preset, frame-rate
resampling and clip sampling of its VideoClips), errors name the file or architecture, and a
synthetic session gets a 400-class label cache through the label loop. No network: models are
random-initialised here and saved as weights files."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

from xmkd.errors import XmkdError
from xmkd.teachers import open_teacher
from xmkd.teachers.torchvision_video import (
    ARCHS,
    ClipClassifier,
    ClipPipeline,
    TorchvisionClips,
    build_network,
    open_torchvision_teacher,
    sample_clip_indices,
    weights_enum,
)

# What torchvision's weight metadata states for each architecture's published accuracy.
EVAL_CLIPS = {
    # arch: (frame_rate, clip_len, clips_per_video)
    "r3d_18": (15.0, 16, 5),
    "mc3_18": (15.0, 16, 5),
    "r2plus1d_18": (15.0, 16, 5),
    "s3d": (15.0, 128, 1),
    "mvit_v1_b": (7.5, 16, 5),
    "mvit_v2_s": (7.5, 16, 5),
    "swin3d_t": (15.0, 32, 12),
    "swin3d_s": (15.0, 32, 12),
    "swin3d_b": (15.0, 32, 12),
}
# The smallest input each network takes: MViT's positional tables fix 16x224x224, S3D's final
# 2x7x7 pooling needs 224 pixels and 13 frames; the others pad or pool down to one cell.
SMALLEST_INPUT = {
    "s3d": (13, 224, 224),
    "mvit_v1_b": (16, 224, 224),
    "mvit_v2_s": (16, 224, 224),
}
# ~6 s per MViT forward (two per test, 12-30 s on a loaded 2-core box); swin3d_b's 92 M
# parameters take seconds to initialise, save and load
SLOW = {"mvit_v1_b", "mvit_v2_s", "swin3d_b"}


def _arch_params(archs=ARCHS):
    return [pytest.param(a, marks=pytest.mark.slow) if a in SLOW else a for a in archs]


class FakeVideos:
    """A raw video dataset (``frame_count``/``read_frames``/``fps`` as xmkd.data.VideoDataset);
    counts the frames read, to show only the sampled ones are decoded."""

    def __init__(self, clips: list[np.ndarray], fps: float | None = 30.0):
        self.clips = clips
        self.names = [f"S001C001P001R001A{i + 1:03d}" for i in range(len(clips))]
        self.labels = np.arange(len(clips), dtype=np.int64)
        self._fps = fps
        self.frames_read = 0

    def __len__(self) -> int:
        return len(self.clips)

    def frame_count(self, index: int) -> int:
        return len(self.clips[index])

    def read_frames(self, index: int, indices: np.ndarray) -> np.ndarray:
        self.frames_read += len(indices)
        return self.clips[index][indices]

    def fps(self, index: int) -> float | None:
        return self._fps


def numbered_frames(count: int, size: int = 8) -> np.ndarray:
    """uint8 (count, size, size, 3) frames, frame k filled with the value k."""
    return np.broadcast_to(
        np.arange(count, dtype=np.uint8)[:, None, None, None], (count, size, size, 3)
    ).copy()


def identity_pipeline(clip_len: int, frame_rate: float, clips: int = 1) -> ClipPipeline:
    """A pipeline whose spatial part keeps 8x8 pixel values (x * 255 is the frame number)."""
    return ClipPipeline(clip_len, frame_rate, clips, (8,), (8, 8), (0.0,) * 3, (1.0,) * 3)


def frame_numbers(x: torch.Tensor) -> np.ndarray:
    """The frame numbers of a pipeline output (..., C, T, H, W) of :func:`numbered_frames`."""
    values = torch.round(x[..., 0, :, 0, 0] * 255).to(torch.int64).numpy()
    assert torch.equal(x, x[..., :1, :, :1, :1].expand_as(x)), "frames are not uniform"
    return values


# ---- metadata and input pipeline ----------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_clip_length_and_frame_rate_come_from_torchvisions_metadata(arch):
    pretrained = weights_enum(arch).DEFAULT
    pipeline = ClipPipeline.for_weights(pretrained, clips_per_video=3)
    frame_rate, clip_len, _ = EVAL_CLIPS[arch]
    assert (pipeline.frame_rate, pipeline.clip_len, pipeline.clips_per_video) == (
        frame_rate,
        clip_len,
        3,
    )
    assert len(pretrained.meta["categories"]) == 400


@pytest.mark.parametrize("arch", ARCHS)
def test_preprocessing_equals_torchvisions_preset(arch):
    pretrained = weights_enum(arch).DEFAULT
    pipeline = ClipPipeline.for_weights(pretrained)
    rng = np.random.default_rng(0)
    # a 4:3 video of about one clip at 25 fps (resampled to the weights' rate)
    count = 2 * pipeline.clip_len
    frames = rng.integers(0, 256, size=(count, 60, 80, 3), dtype=np.uint8)
    x = pipeline(frames, fps=25.0)
    idx = sample_clip_indices(len(frames), 25.0, pipeline.frame_rate, pipeline.clip_len)[0]
    expected = pretrained.transforms()(torch.from_numpy(frames[idx]).permute(0, 3, 1, 2))
    assert x.shape == (3, pipeline.clip_len, *pipeline.crop_size) == expected.shape
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-5)


def test_several_clips_each_equal_the_preset_on_their_frames():
    pretrained = weights_enum("r3d_18").DEFAULT
    pipeline = ClipPipeline.for_weights(pretrained, clips_per_video=3)
    frames = np.random.default_rng(0).integers(0, 256, size=(50, 72, 96, 3), dtype=np.uint8)
    x = pipeline(frames, fps=30.0)
    idx = sample_clip_indices(len(frames), 30.0, 15.0, 16, 3)
    assert x.shape == (3, 3, 16, 112, 112) and idx[:, 0].tolist() == [0, 8, 18]
    for clip, clip_idx in zip(x, idx):
        frames_t = torch.from_numpy(frames[clip_idx]).permute(0, 3, 1, 2)
        torch.testing.assert_close(clip, pretrained.transforms()(frames_t), rtol=0, atol=1e-5)


def test_30fps_clip_resampled_to_15fps_takes_every_second_frame():
    videos = FakeVideos([numbered_frames(40)], fps=30.0)
    x, label, index = TorchvisionClips(videos, identity_pipeline(8, 15.0))[0]
    assert x.shape == (3, 8, 8, 8) and (label, index) == (0, 0)
    assert frame_numbers(x).tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    assert videos.frames_read == 8  # only the sampled frames are decoded, not all 40
    # an unknown frame rate is taken as 30 fps
    x, _, _ = TorchvisionClips(
        FakeVideos([numbered_frames(40)], fps=None), identity_pipeline(8, 15.0)
    )[0]
    assert frame_numbers(x).tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    # MViT's 7.5 fps from 30: every 4th; a 10 fps clip at 15 fps repeats frames
    assert sample_clip_indices(40, 30.0, 7.5, 4).tolist() == [[0, 4, 8, 12]]
    assert sample_clip_indices(40, 10.0, 15.0, 6).tolist() == [[0, 0, 1, 2, 2, 3]]


def test_short_clips_loop_and_several_clips_are_evenly_spaced():
    # 10 frames at 30 fps are 5 at 15 fps: a 8-frame clip loops over them
    x, _, _ = TorchvisionClips(FakeVideos([numbered_frames(10)]), identity_pipeline(8, 15.0))[0]
    assert frame_numbers(x).tolist() == [0, 2, 4, 6, 8, 0, 2, 4]
    # 40 frames -> 20 at 15 fps -> clips of 8 start at 0, 6, 12 (resampled), frames 0, 12, 24
    x, _, _ = TorchvisionClips(FakeVideos([numbered_frames(40)]), identity_pipeline(8, 15.0, 3))[0]
    assert x.shape == (3, 3, 8, 8, 8)
    numbers = frame_numbers(x)
    assert numbers[:, 0].tolist() == [0, 12, 24]
    assert numbers[2].tolist() == list(range(24, 40, 2))
    # a short video's clips are all the same loop
    x, _, _ = TorchvisionClips(FakeVideos([numbered_frames(6)]), identity_pipeline(4, 15.0, 2))[0]
    assert frame_numbers(x).tolist() == [[0, 2, 4, 0], [0, 2, 4, 0]]


def test_clip_sampling_equals_torchvisions_video_clips():
    from torchvision.datasets.video_utils import VideoClips

    for frames, fps, rate, clip_len, clips in [
        (100, 29.97, 15.0, 16, 5),
        (301, 30.0, 7.5, 16, 5),
        (90, 25.0, 15.0, 32, 12),
        (40, 12.5, 15.0, 16, 3),
        (64, 60.0, 15.0, 16, 1),
    ]:
        windows, _ = VideoClips.compute_clips_for_video(
            torch.arange(frames), clip_len, 1, fps, rate
        )
        chosen = torch.linspace(0, len(windows) - 1, steps=clips).floor().to(torch.int64)
        mine = sample_clip_indices(frames, fps, rate, clip_len, clips)
        assert np.array_equal(mine, windows[chosen].numpy()), (frames, fps, rate)


# ---- weights files into torchvision's networks -----------------------------------------------
@pytest.fixture
def quick_trunc_normal(monkeypatch):
    """torch's truncated-normal init (most of the swin/MViT build time: a rejection loop per
    tensor) replaced by a clamped normal: any random weights serve these tests."""

    def clamped_normal(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
        with torch.no_grad():
            return tensor.normal_(mean, std, generator=generator).clamp_(a, b)

    monkeypatch.setattr(torch.nn.init, "trunc_normal_", clamped_normal)


@pytest.mark.parametrize("arch", _arch_params())
def test_weights_file_gives_the_same_logits_as_the_network(arch, tmp_path, quick_trunc_normal):
    torch.manual_seed(0)
    network = build_network(arch)
    path = tmp_path / f"{arch}.pt"
    torch.save(network.state_dict(), path)
    teacher = open_torchvision_teacher(arch, weights=path)
    frames, height, width = SMALLEST_INPUT.get(arch, (1, 16, 16))
    x = torch.randn(1, 3, frames, height, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = network(x)
        got = teacher.model(x)
    assert torch.equal(got, expected)
    assert not teacher.model.training
    assert teacher.class_names == list(weights_enum(arch).DEFAULT.meta["categories"])
    assert len(teacher.class_names) == 400 and teacher.class_names[0] == "abseiling"
    assert teacher.kind == "torchvision" and teacher.modality == "rgb"
    assert str(path) in teacher.source and teacher.info["arch"] == arch
    frame_rate, clip_len, _ = EVAL_CLIPS[arch]
    assert (teacher.info["clip_len"], teacher.info["frame_rate"]) == (clip_len, frame_rate)


def test_weights_file_may_wrap_the_state_dict(tmp_path):
    torch.manual_seed(0)
    network = build_network("mc3_18")
    state = network.state_dict()
    x = torch.randn(2, 3, 2, 16, 16)
    with torch.no_grad():
        expected = network(x)
    for name, data in [
        ("wrapped", {"state_dict": state, "epoch": 3}),
        ("ddp", {"model": {f"module.{k}": v for k, v in state.items()}}),
        ("half", {k: v.half() if v.is_floating_point() else v for k, v in state.items()}),
    ]:
        torch.save(data, tmp_path / f"{name}.pt")
        teacher = open_teacher("torchvision:mc3_18", weights=tmp_path / f"{name}.pt")
        with torch.no_grad():
            got = teacher.model(x)
        assert got.dtype == torch.float32
        if name == "half":  # float16 weights are widened: close, not identical
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-2)
        else:
            assert torch.equal(got, expected), name


def test_several_clips_average_probabilities():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv3d(3, 4, 1), nn.AdaptiveAvgPool3d(1), nn.Flatten())
    model = ClipClassifier(network)
    x = torch.randn(2, 3, 3, 4, 6, 6)  # 2 videos of 3 clips
    with torch.no_grad():
        got = model(x)
        per_clip = network(x.flatten(0, 1)).view(2, 3, 4)
        single = model(x[:, :1])
    expected = per_clip.softmax(dim=2).mean(dim=1).log()
    torch.testing.assert_close(got, expected)
    assert torch.equal(single, per_clip[:, 0])  # one clip: the network's own logits
    with pytest.raises(ValueError, match="expected"):
        model(torch.zeros(3, 4, 6, 6))


def test_bfloat16_runs_under_autocast_and_returns_float32():
    teacher = open_torchvision_teacher("mc3_18", random_init=True, dtype="bfloat16")
    assert teacher.info["dtype"] == "bfloat16" and "random" in teacher.source
    full = ClipClassifier(teacher.model.network)  # the same network in float32
    x = torch.randn(2, 3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        low, high = teacher.model(x), full(x)
    assert low.dtype == torch.float32 and low.shape == (2, 400)
    assert not torch.equal(low, high)  # it did run in bfloat16
    cosine = torch.nn.functional.cosine_similarity(low, high, dim=1)
    assert bool((cosine > 0.98).all()), cosine


# ---- errors -------------------------------------------------------------------------------------
def test_unknown_arch_lists_the_choices():
    with pytest.raises(XmkdError, match=r"torchvision:r4d_18: unknown .*r3d_18, mc3_18"):
        open_teacher("torchvision:r4d_18")


def test_corrupt_missing_and_foreign_weights_files_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a torch file")
    with pytest.raises(XmkdError, match=r"corrupt\.pt.*(corrupt|readable)"):
        open_torchvision_teacher("r3d_18", weights=corrupt)
    with pytest.raises(XmkdError, match=r"nothing\.pt: no such file"):
        open_torchvision_teacher("r3d_18", weights=tmp_path / "nothing.pt")
    numbers = tmp_path / "numbers.pt"
    torch.save({"epoch": 3, "lr": 0.1}, numbers)
    with pytest.raises(XmkdError, match=r"numbers\.pt: is not a state_dict"):
        open_torchvision_teacher("r3d_18", weights=numbers)


def test_weights_of_another_architecture_are_refused(tmp_path):
    other = tmp_path / "mc3.pt"
    torch.save(build_network("mc3_18", device="meta").to_empty(device="cpu").state_dict(), other)
    # same key names as r3d_18, other kernel shapes
    with pytest.raises(
        XmkdError,
        match=r"mc3\.pt: holds weights of another architecture .*r3d_18: other shapes layer2",
    ):
        open_torchvision_teacher("r3d_18", weights=other)
    # another family: other key names
    with pytest.raises(
        XmkdError,
        match=r"mc3\.pt: holds weights of another .*s3d: missing keys .*unexpected keys stem",
    ):
        open_torchvision_teacher("s3d", weights=other)


def test_option_values_are_checked():
    with pytest.raises(XmkdError, match="--dtype 'float16'"):
        open_torchvision_teacher("r3d_18", dtype="float16")
    with pytest.raises(XmkdError, match="--clips-per-video must be at least 1"):
        open_torchvision_teacher("r3d_18", clips_per_video=0)


def test_pretrained_weights_offline_say_what_to_do(monkeypatch, tmp_path):
    """No --weights and no cached download: one sentence (the download is faked to fail)."""
    enum = type(weights_enum("r3d_18").DEFAULT)

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(enum, "get_state_dict", offline)
    with pytest.raises(XmkdError, match=r"give --weights FILE .* or run once with internet"):
        open_torchvision_teacher("r3d_18")


# ---- end to end through the label loop --------------------------------------------------------
@pytest.mark.slow
def test_label_loop_writes_a_400_class_cache(tmp_path):
    from xmkd.data import VideoDataset
    from xmkd.synth import SynthConfig, generate
    from xmkd.train.label import label_dataset, load_labels

    session = tmp_path / "session"
    generate(SynthConfig(classes=2, subjects=(1,), views=(1,), repetitions=1, frames=8), session)
    raw = VideoDataset(session)
    torch.manual_seed(0)
    teacher = open_torchvision_teacher("r3d_18", random_init=True)
    out = tmp_path / "labels.pt"
    inputs = teacher.inputs(raw)
    cache, facts = label_dataset(
        teacher.model,
        inputs,
        raw.names,
        out,
        teacher.class_names,
        modality=teacher.modality,
        teacher_path=teacher.source,
        batch_size=2,
        progress=False,
    )
    assert facts["labeled"] == len(raw) == 2
    stored = load_labels(out)
    assert stored.class_names == teacher.class_names and len(stored.class_names) == 400
    assert stored.logits.shape == (2, 400) and bool(torch.isfinite(stored.logits).all())
    assert stored.teacher == teacher.source
    # the rows are the teacher's logits of each clip's 16 frames of 112x112 (8 frames at 10 fps
    # become 12 at 15 fps, looped to 16)
    x, _, index = inputs[1]
    assert x.shape == (3, 16, 112, 112)
    with torch.no_grad():
        row = teacher.model(x[None])[0]
    torch.testing.assert_close(stored.lookup([raw.names[index]])[0], row)
