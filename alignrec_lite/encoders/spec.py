"""Tower spec strings: what the CLI's ``--image-encoder`` / ``--text-encoder`` may say, parsed.

::

    tiny-cnn            small CNN, random weights (seeded)             image
    tiny-vit            small open_clip VisionTransformer, random      image
    minilm              the packaged MiniLM sentence encoder           text
    openclip:ARCH       an open_clip architecture, random weights      image or text
    openclip:ARCH@TAG   ... with pretrained weights (a tag such as ``openai``, or a file path)

:func:`parse_spec` checks a spec against its modality and returns an :class:`EncoderSpec`;
:func:`alignrec_lite.encoders.build_tower` builds the tower it names.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

IMAGE_SPECS = ("tiny-cnn", "tiny-vit", "openclip:ARCH[@TAG]")
TEXT_SPECS = ("minilm", "openclip:ARCH[@TAG]")


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
        rest = s[len("openclip:") :]
        arch, _, tag = rest.partition("@")
        if not arch:
            raise ConfigError(f"empty architecture in {spec!r}", row=opt, fix="write openclip:ViT-B-32[@openai]")
        return EncoderSpec("openclip", arch, tag or None)
    if (modality == "image" and s in ("tiny-cnn", "tiny-vit")) or (modality == "text" and s == "minilm"):
        return EncoderSpec(s)
    raise ConfigError(f"unknown {modality} encoder {spec!r}", row=opt, fix=f"use one of {', '.join(allowed)}")


__all__ = ["IMAGE_SPECS", "TEXT_SPECS", "EncoderSpec", "parse_spec"]
