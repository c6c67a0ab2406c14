"""Tiny randomly initialised X-CLIP and CLIP model folders for tests, built locally (no download).

``make_tiny_xclip(folder)`` / ``make_tiny_clip(folder)`` write what ``save_pretrained`` writes for
a real model (config.json, model.safetensors, tokenizer and image processor files), so
``xclip:FOLDER`` / ``clip:FOLDER`` open them exactly as they open a downloaded model. The models
are small (hidden size 32, one layer, 32x32 images in 16x16 patches; X-CLIP reads 4 frames, not
the base models' 8) and their weights are seeded: the same folder content every time.

The tokenizer is a CLIP byte-level BPE tokenizer over the 256 byte characters (plus their
end-of-word ``</w>`` variants) and no merges: every character is a token. ``<|startoftext|>`` and
``<|endoftext|>`` take the last two ids, as in CLIP's real vocabulary (X-CLIP's text encoder finds
the end of a prompt as its largest token id).
"""

from __future__ import annotations

from pathlib import Path

#: what the tiny models read: frames of IMAGE_SIZE x IMAGE_SIZE; X-CLIP clips of XCLIP_FRAMES
IMAGE_SIZE = 32
XCLIP_FRAMES = 4
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def tiny_clip_tokenizer():
    """A character-level CLIPTokenizer (see the module docstring)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({f"{c}</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _text_config(tokenizer) -> dict:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _vision_config() -> dict:
    return {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": 16,
    }


def _save(folder: Path, model, processor) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_tiny_xclip(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny X-CLIP model, its tokenizer and its (VideoMAE) image processor to ``folder``."""
    import torch
    from transformers import VideoMAEImageProcessor, XCLIPConfig, XCLIPModel, XCLIPProcessor

    tokenizer = tiny_clip_tokenizer()
    vision = _vision_config() | {
        "num_frames": XCLIP_FRAMES,
        "mit_hidden_size": 16,  # the multi-frame transformer reads the projected frame embeddings
        "mit_intermediate_size": 32,
        "mit_num_hidden_layers": 1,
        "mit_num_attention_heads": 2,
    }
    config = XCLIPConfig(
        text_config=_text_config(tokenizer),
        vision_config=vision,
        projection_dim=16,
        prompt_layers=1,
        prompt_num_attention_heads=2,
    )
    torch.manual_seed(seed)
    model = XCLIPModel(config).eval()
    image_processor = VideoMAEImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    return _save(
        folder, model, XCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    )


def make_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny CLIP model, its tokenizer and its image processor to ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = tiny_clip_tokenizer()
    config = CLIPConfig(
        text_config=_text_config(tokenizer), vision_config=_vision_config(), projection_dim=16
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    return _save(folder, model, CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer))
