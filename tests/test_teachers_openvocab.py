"""Open-vocabulary teachers (xmkd.teachers.openvocab) on tiny X-CLIP / CLIP folders built locally:
their logits are the transformers models' own, their inputs the processors' own, prompts are
ensembled as documented, and a synthetic session labels end to end."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tests.tiny_hf import IMAGE_SIZE, XCLIP_FRAMES, make_tiny_clip, make_tiny_xclip
from xmkd.errors import XmkdError
from xmkd.teachers.openvocab import open_clip_teacher, open_xclip_teacher

PROMPTS = {
    "wave hand": ["a person waving a hand"],
    "drink water": ["a person drinking water"],
    "sit down": ["a person sitting down"],
}


@pytest.fixture(scope="module")
def xclip_dir(tmp_path_factory):
    return make_tiny_xclip(tmp_path_factory.mktemp("hf") / "xclip")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("hf") / "clip")


class FakeVideos:
    """A raw video dataset (``.frame_count(i)``, ``.read_frames(i, idx)``, ``.names``,
    ``.labels``) of random RGB clips."""

    def __init__(self, lengths=(10, 7), size=(40, 52), seed=0):
        rng = np.random.default_rng(seed)
        self.videos = [rng.integers(0, 256, (n, *size, 3), dtype=np.uint8) for n in lengths]
        self.names = [f"S001C001P001R001A00{i + 1}" for i in range(len(lengths))]
        self.labels = np.arange(len(lengths), dtype=np.int64)
        self.class_names = None

    def __len__(self):
        return len(self.videos)

    def frame_count(self, index):
        return len(self.videos[index])

    def read_frames(self, index, indices):
        return self.videos[index][indices]


def _reference(folder, kind):
    from transformers import AutoProcessor, CLIPModel, XCLIPModel

    model_class = XCLIPModel if kind == "xclip" else CLIPModel
    return model_class.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def _batch(dataset):
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


@torch.no_grad()
def test_xclip_logits_and_inputs_are_the_models_own(xclip_dir):
    teacher = open_xclip_teacher(str(xclip_dir), PROMPTS)
    assert teacher.class_names == list(PROMPTS) and teacher.open_vocabulary
    assert teacher.kind == "xclip" and teacher.modality == "rgb"
    assert teacher.info["frames"] == XCLIP_FRAMES and teacher.info["prompts"] == PROMPTS
    raw = FakeVideos()
    clips = teacher.inputs(raw)
    # frames spread uniformly: the centres of 4 equal segments of 10 frames
    np.testing.assert_array_equal(clips.sampled_frames(0), raw.videos[0][[1, 3, 6, 8]])
    x = _batch(clips)
    assert x.shape == (2, XCLIP_FRAMES, 3, IMAGE_SIZE, IMAGE_SIZE) and x.dtype == torch.float32

    model, processor = _reference(xclip_dir, "xclip")
    texts = [p for prompts in PROMPTS.values() for p in prompts]
    videos = [list(clips.sampled_frames(i)) for i in range(len(raw))]
    ref = processor(text=texts, videos=videos, padding=True, return_tensors="pt")
    torch.testing.assert_close(x, ref["pixel_values"], rtol=0, atol=0)
    expected = model(**ref).logits_per_video
    torch.testing.assert_close(teacher.model(x), expected, rtol=1e-5, atol=1e-5)
    # the prompt generator conditions the text on each video: the batch is not one clip repeated
    assert not torch.allclose(expected[0] - expected[0].mean(), expected[1] - expected[1].mean())
    # temperature divides the model's own scale
    hot = open_xclip_teacher(xclip_dir, PROMPTS, temperature=2.0)
    torch.testing.assert_close(hot.model(x), expected / 2, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_xclip_prompt_ensembling(xclip_dir):
    prompts = {"wave hand": ["a person waving a hand", "someone waves"], "sit down": ["sit"]}
    teacher = open_xclip_teacher(xclip_dir, prompts)
    x = _batch(teacher.inputs(FakeVideos()))
    model, processor = _reference(xclip_dir, "xclip")
    tokens = processor.tokenizer(["a person waving a hand", "someone waves", "sit"], padding=True)
    out = model(
        input_ids=torch.tensor(tokens["input_ids"]),
        attention_mask=torch.tensor(tokens["attention_mask"]),
        pixel_values=x,
    )
    # the mean of the video-conditioned, normalised prompt embeddings, re-normalised
    wave = torch.nn.functional.normalize(out.text_embeds[:, :2].mean(dim=1), dim=-1)
    text = torch.stack([wave, out.text_embeds[:, 2]], dim=1)
    expected = model.logit_scale.exp() * torch.einsum("bd,bkd->bk", out.video_embeds, text)
    logits = teacher.model(x)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    single = open_xclip_teacher(
        xclip_dir, {"wave hand": ["a person waving a hand"], "sit down": ["sit"]}
    )
    one = single.model(x)
    assert not torch.allclose(logits[:, 0], one[:, 0], atol=1e-3)  # the ensemble counts
    torch.testing.assert_close(logits[:, 1], one[:, 1])  # an action's own prompts only


@torch.no_grad()
def test_clip_logits_are_the_mean_frame_embedding_scores(clip_dir):
    model, processor = _reference(clip_dir, "clip")
    texts = [p for prompts in PROMPTS.values() for p in prompts]
    raw = FakeVideos()

    one = open_clip_teacher(clip_dir, PROMPTS, frames=1)
    clips = one.inputs(raw)
    np.testing.assert_array_equal(clips.sampled_frames(0), raw.videos[0][[5]])
    x = _batch(clips)
    ref = processor(
        text=texts, images=[raw.videos[0][5], raw.videos[1][3]], padding=True, return_tensors="pt"
    )
    torch.testing.assert_close(x[:, 0], ref["pixel_values"], rtol=0, atol=0)
    out = model(**ref)
    torch.testing.assert_close(one.model(x), out.logits_per_image, rtol=1e-5, atol=1e-5)

    teacher = open_clip_teacher(clip_dir, PROMPTS, frames=3)
    assert teacher.info["frames"] == 3 and teacher.class_names == list(PROMPTS)
    frames = teacher.inputs(raw).sampled_frames(0)
    np.testing.assert_array_equal(frames, raw.videos[0][[1, 5, 8]])
    x = teacher.inputs(raw)[0][0]
    ref = processor(text=texts, images=list(frames), padding=True, return_tensors="pt")
    torch.testing.assert_close(x, ref["pixel_values"], rtol=0, atol=0)
    out = model(**ref)
    # the mean of the frames' scores is the cosine with the mean of the unit frame embeddings;
    # the teacher re-normalises that mean, dividing the scores by its length
    mean_length = out.image_embeds.mean(dim=0).norm()
    logits = teacher.model(x[None])[0]
    torch.testing.assert_close(
        logits * mean_length, out.logits_per_image.mean(dim=0), rtol=1e-5, atol=1e-5
    )
    assert int(logits.argmax()) == int(out.logits_per_image.mean(dim=0).argmax())


@torch.no_grad()
def test_clip_prompt_ensembling_and_class_order(clip_dir):
    model, processor = _reference(clip_dir, "clip")
    prompts = {"sit down": ["a person sitting down", "sitting"], "wave hand": ["waving"]}
    teacher = open_clip_teacher(clip_dir, prompts, frames=2)
    x = _batch(teacher.inputs(FakeVideos()))
    tokens = processor.tokenizer(
        ["a person sitting down", "sitting", "waving"], padding=True, return_tensors="pt"
    )
    text = torch.nn.functional.normalize(
        model.text_projection(model.text_model(**tokens)[1]), dim=-1
    )
    text = torch.nn.functional.normalize(torch.stack([text[:2].mean(dim=0), text[2]]), dim=-1)
    video = teacher.model.video_embeds(x)
    torch.testing.assert_close(teacher.model(x), model.logit_scale.exp() * video @ text.T)
    single = open_clip_teacher(
        clip_dir, {"sit down": ["sitting"], "wave hand": ["waving"]}, frames=2
    )
    assert not torch.allclose(teacher.model(x)[:, 0], single.model(x)[:, 0], atol=1e-3)
    # the classes are the actions in the order given; the columns follow them
    swapped = open_clip_teacher(clip_dir, dict(reversed(list(prompts.items()))), frames=2)
    assert swapped.class_names == ["wave hand", "sit down"]
    torch.testing.assert_close(swapped.model(x), teacher.model(x).flip(1))


@torch.no_grad()
def test_bfloat16_autocast_keeps_float_logits(clip_dir):
    raw = FakeVideos()
    full = open_clip_teacher(clip_dir, PROMPTS, frames=2)
    half = open_clip_teacher(clip_dir, PROMPTS, frames=2, dtype="bfloat16")
    x = _batch(full.inputs(raw))
    logits = half.model(x)
    assert logits.dtype == torch.float32 and half.info["dtype"] == "bfloat16"
    torch.testing.assert_close(logits, full.model(x), rtol=0.05, atol=0.1)


def test_label_synthetic_session_end_to_end(tmp_path, tiny_session, xclip_dir, clip_dir):
    from xmkd.data import VideoDataset
    from xmkd.teachers import open_teacher
    from xmkd.train.label import label_dataset, load_labels

    torch.set_num_threads(1)
    raw = VideoDataset(tiny_session, split="student_train")
    prompts = {name: [f"a person doing {name}", name] for name in raw.class_names[:3]}
    for spec, options in ((f"xclip:{xclip_dir}", {}), (f"clip:{clip_dir}", {"frames": 3})):
        teacher = open_teacher(spec, prompts=prompts, **options)
        out = tmp_path / f"{teacher.kind}.pt"
        cache, facts = label_dataset(
            teacher.model, teacher.inputs(raw), raw.names, out, teacher.class_names,
            modality=teacher.modality, teacher_path=teacher.source, batch_size=8, progress=False,
        )  # fmt: skip
        assert facts["labeled"] == len(raw) == 24
        saved = load_labels(out)
        assert saved.class_names == list(prompts) and saved.teacher == spec
        assert saved.logits.shape == (24, 3) and torch.isfinite(saved.logits).all()
        with torch.no_grad():
            direct = teacher.model(teacher.inputs(raw)[5][0][None])[0]
        torch.testing.assert_close(saved.lookup([raw.names[5]])[0], direct, rtol=1e-4, atol=1e-4)
        assert saved.logits.std(dim=0).min() > 0  # the clips are told apart


def test_hub_id_opens_from_the_local_cache_without_network(tmp_path, clip_dir, monkeypatch):
    import huggingface_hub.constants

    # the layout huggingface_hub downloads into: models--ORG--NAME/{refs/main, snapshots/HASH/}
    repo = tmp_path / "hub" / "models--someone--tiny-clip"
    shutil.copytree(clip_dir, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    teacher = open_clip_teacher("someone/tiny-clip", PROMPTS, frames=2)
    assert (
        teacher.source == "clip:someone/tiny-clip" and teacher.info["model"] == "someone/tiny-clip"
    )
    with pytest.raises(
        XmkdError,
        match=r"not-cached is neither.*download it once with internet.*or give a local folder",
    ):
        open_clip_teacher("someone/not-cached", PROMPTS)


def test_errors_name_the_model_and_what_to_do(tmp_path, xclip_dir, clip_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(XmkdError, match=r"xclip:.*empty.*config\.json"):
        open_xclip_teacher(empty, PROMPTS)
    with pytest.raises(XmkdError, match="no such folder"):
        open_clip_teacher(str(tmp_path / "missing" / "model" / "dir"), PROMPTS)
    with pytest.raises(XmkdError, match=r"'clip' model, not X-CLIP; open it as clip:"):
        open_xclip_teacher(clip_dir, PROMPTS)
    with pytest.raises(XmkdError, match="no target actions"):
        open_clip_teacher(clip_dir, {})
    with pytest.raises(XmkdError, match="'sit down' has no prompt"):
        open_clip_teacher(clip_dir, {"wave hand": ["waving"], "sit down": []})
    with pytest.raises(XmkdError, match="'sit down' has no prompt"):
        open_xclip_teacher(xclip_dir, {"sit down": ["  "]})
    with pytest.raises(XmkdError, match="--weights is for torchvision"):
        open_clip_teacher(clip_dir, PROMPTS, weights="w.pt")
    with pytest.raises(XmkdError, match="--temperature must be a positive"):
        open_clip_teacher(clip_dir, PROMPTS, temperature=0)
    with pytest.raises(XmkdError, match="--dtype 'float16'"):
        open_clip_teacher(clip_dir, PROMPTS, dtype="float16")
    with pytest.raises(XmkdError, match=f"reads {XCLIP_FRAMES} frames per clip"):
        open_xclip_teacher(xclip_dir, PROMPTS, frames=XCLIP_FRAMES + 1)
    no_processor = tmp_path / "weights-only"
    no_processor.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(clip_dir / name, no_processor / name)
    with pytest.raises(XmkdError, match="no usable tokenizer and image processor"):
        open_clip_teacher(no_processor, PROMPTS)
