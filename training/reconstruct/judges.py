"""Judges: what a frozen model sees in an image, as a set of words, and their Jaccard agreement.

LLM-EvRep asks a frozen LLM to describe the generated and the real image and scores
1 - |A & B| / |A | B| of the two answers' word sets. A judge here is anything with
``describe(image) -> set[str]`` (HxWx3 uint8 RGB). Two ship:

* :class:`SegmentationJudge` (works everywhere): the classes the frozen teacher + segmentation
  head finds in the image (those covering at least ``min_fraction`` of the pixels);
* :class:`VLMJudge`: a local vision-language model through ``transformers`` (any
  image-text-to-text checkpoint directory); never needed, loaded only when asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

#: words that carry no content in a description (the paper compares content words)
STOPWORDS = frozenset(
    "a an the and or of in on at to with without is are was were be been this that these those "
    "it its there here image picture photo shows showing shown depicts of from by for as some "
    "which who what where while into onto over under near next can see seen visible".split())


@runtime_checkable
class Judge(Protocol):
    name: str

    def describe(self, image: np.ndarray) -> set[str]:
        """The content words (or class names) the judge sees in an RGB uint8 image."""
        ...


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """|A & B| / |A | B|; two empty sets agree completely (1.0)."""
    a, b = set(a), set(b)
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def jaccard_distance(a: Iterable[str], b: Iterable[str]) -> float:
    """LLM-EvRep's semantic loss value: 1 - Jaccard."""
    return 1.0 - jaccard(a, b)


def words_of(text: str, stopwords: frozenset[str] = STOPWORDS) -> set[str]:
    """Lower-case content words of a free-text answer (letters only, plural 's' kept)."""
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in stopwords and len(w) > 1}


def describe_batch(judge: Judge, images: Sequence[np.ndarray]) -> list[set[str]]:
    batched = getattr(judge, "describe_batch", None)
    return batched(images) if batched is not None else [judge.describe(im) for im in images]


class SegmentationJudge:
    """Class sets from a frozen EventFM teacher + segmentation head (RGB input)."""

    name = "segmentation"

    def __init__(self, model, min_fraction: float = 0.01, device: str = "cpu",
                 batch_size: int = 16) -> None:
        import torch

        if model.teacher is None or "segmentation" not in model.heads:
            raise ValueError("the segmentation judge needs a checkpoint with the RGB teacher and "
                             "a segmentation head")
        if not 0 <= min_fraction < 1:
            raise ValueError(f"min_fraction must be in [0, 1), got {min_fraction}")
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.min_fraction = float(min_fraction)
        self.batch_size = int(batch_size)
        self.class_names = tuple(model.config.class_names)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> SegmentationJudge:
        from event_fm.models import load_model

        return cls(load_model(path), **kwargs)

    def class_fractions(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, classes) share of pixels the head assigns to each class."""
        import torch
        import torch.nn.functional as F

        out = []
        for lo in range(0, len(images), self.batch_size):
            x = torch.cat([self._to_input(im) for im in images[lo:lo + self.batch_size]])
            with torch.inference_mode():
                logits = self.model.forward_image(x, heads="segmentation")["semantic_logits"]
            labels = logits.argmax(1).flatten(1)
            counts = F.one_hot(labels, len(self.class_names)).sum(1).float()
            out.append((counts / labels.shape[1]).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)))

    def _to_input(self, image: np.ndarray):
        """HxWx3 uint8 -> (1, 3, h, w) float at the teacher's input size."""
        import torch
        import torch.nn.functional as F

        image = np.asarray(image, np.uint8)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"judge images must be HxWx3 uint8, got shape {image.shape}")
        x = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        return F.interpolate(x, size=self.model.img_size, mode="bilinear", align_corners=False)

    def describe_batch(self, images: Sequence[np.ndarray]) -> list[set[str]]:
        fractions = self.class_fractions(images)
        return [{self.class_names[k] for k in np.flatnonzero(f >= self.min_fraction)}
                for f in fractions]

    def describe(self, image: np.ndarray) -> set[str]:
        return self.describe_batch([image])[0]


class VLMJudge:
    """A local vision-language model (transformers, image-text-to-text) answering a prompt.

    The paper's formulation: the answer's content words are the set. ``model_path`` is a local
    directory; nothing is downloaded.
    """

    name = "vlm"

    def __init__(self, model_path: str | Path, prompt: str = "List the objects in this image.",
                 max_new_tokens: int = 48, device: str = "cpu") -> None:
        path = Path(model_path)
        if not path.is_dir():
            raise FileNotFoundError(f"VLM judge: no local model directory {path}")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
        self.model.to(device).eval()
        self.device = device
        self.prompt = prompt
        self.max_new_tokens = int(max_new_tokens)

    def describe(self, image: np.ndarray) -> set[str]:
        import torch
        from PIL import Image

        messages = [{"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": self.prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self.processor(images=Image.fromarray(np.asarray(image, np.uint8)), text=text,
                                return_tensors="pt").to(self.device)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                      do_sample=False)
        answer = self.processor.batch_decode(ids[:, inputs["input_ids"].shape[1]:],
                                             skip_special_tokens=True)[0]
        return words_of(answer)


def make_judge(kind: str, checkpoint: str | Path, device: str = "cpu",
               min_fraction: float = 0.01) -> Judge:
    """'segmentation' (checkpoint: an EventFM model with teacher) or 'vlm' (a local VLM dir)."""
    if kind == "segmentation":
        return SegmentationJudge.from_checkpoint(checkpoint, min_fraction=min_fraction,
                                                 device=device)
    if kind == "vlm":
        return VLMJudge(checkpoint, device=device)
    raise ValueError(f"unknown judge {kind!r}: use 'segmentation' or 'vlm'")
