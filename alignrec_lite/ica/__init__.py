"""Stage 1: the multimodal encoder (MMEnc) and its inter-content alignment (ICA) pre-training.

AlignRec (CIKM 2024, ALIGNREC_SPEC §1.1) fine-tunes a BEiT-3 on the items' image-text
pairs with masked image/text modelling and uses one fused vector per item. Neither
its training code nor its weights are public, so the kit builds an honest, small
version of the same idea on top of :mod:`alignrec_lite.encoders`:

* **MMEnc** = an image tower + a text tower (any of ``tiny-cnn``, ``tiny-vit``,
  ``minilm``, ``openclip:ARCH[@TAG]``), a linear projection of each into one
  ``embed_dim`` space (``z_img``, ``z_txt``, L2-normalised), two small
  *predictors* that guess one modality's embedding from the other, and a
  **fusion** into the item vector written to ``mm_feat.npy``:

  - ``"mean"``: ``normalize((z_img + z_txt) / 2)``;
  - ``"concat"``: ``[z_img, z_txt] / sqrt(2)`` (``2 * embed_dim`` wide);
  - ``"mlp"``: ``normalize((z_img + z_txt) / 2 + MLP([z_img, z_txt]))`` (residual,
    the MLP's last layer starts at zero).

* **ICA objective** ``L = L_clip + mask_weight * L_mask``:

  - ``L_clip``: CLIP's symmetric InfoNCE over the batch's image-text pairs
    (:func:`alignrec_lite.losses.clip_loss`) with a learnable temperature
    (``logit_scale = log(1/0.07)`` at start, clamped at ``log 100``, as CLIP);
  - ``L_mask`` (masked-modality modelling): for a share ``mask_prob`` of the
    batch one modality (image or text, at random) is masked. The predictor
    reconstructs its embedding from the other modality,
    ``1 - cos(pred(z_other), stopgrad(z_masked))``, and the fused vector of the
    masked view (the masked modality replaced by its prediction) must identify the
    item among the batch's complete fused vectors,
    ``InfoNCE(fuse(masked view), stopgrad(fuse(full)), tau=0.1)``. This is the
    counterpart of BEiT-3's mask-then-predict at the level of embeddings, and it
    is what makes the fused feature usable when an item lacks a modality
    (``mm_feat_mask_image.npy`` / ``mm_feat_mask_text.npy``, used by the
    mask-modality metric of :mod:`alignrec_lite.feature_eval`).

* Options: freeze the pretrained text tower (default, LiT-style: the locked tower
  is the teacher, the other learns to match it; its outputs are computed once),
  freeze the image tower, mixed precision, any device (:func:`~alignrec_lite.utils.get_device`).

Differences from the paper, stated plainly: two separate towers instead of one
Multiway transformer; alignment by contrastive learning plus embedding-level
masked prediction instead of token-level masked image/text modelling; a tiny
image tower trained from scratch on a CPU by default (``--arch ViT-B-32
--pretrained openai`` on a GPU is the scaled-up path).

Rooms: :mod:`.model` (:class:`ICAConfig`, :class:`MMEnc` and its loss) and :mod:`.pretrain`
(the items' content, encoding, checkpoints, :func:`pretrain_ica`).
"""

from ..encoders import MASKED_FILES, MM_FILE
from .model import FUSIONS, MAX_LOGIT_SCALE, ICAConfig, MMEnc, build_mmenc
from .pretrain import (
    ItemContent,
    encode_items,
    encode_new_item,
    ica_config_dict,
    load_checkpoint,
    load_mmenc,
    pretrain_ica,
    retrieval_top1,
)

__all__ = [
    "FUSIONS",
    "MASKED_FILES",
    "MAX_LOGIT_SCALE",
    "MM_FILE",
    "ICAConfig",
    "ItemContent",
    "MMEnc",
    "build_mmenc",
    "encode_items",
    "encode_new_item",
    "ica_config_dict",
    "load_checkpoint",
    "load_mmenc",
    "pretrain_ica",
    "retrieval_top1",
]
