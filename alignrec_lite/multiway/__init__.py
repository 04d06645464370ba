"""Stage 1 the paper's way: a small Multiway Transformer pre-trained by masked multimodal modelling.

AlignRec (CIKM 2024, ALIGNREC_SPEC §1.1) encodes every item with BEiT-3 (Wang et al.,
"Image as a Foreign Language", CVPR 2023), a *Multiway* Transformer, fine-tuned on the
items' image-text pairs by mask-then-predict, and keeps the output at the first
position as the item's one fused vector. This module is a small version of that design,
written for this kit and sized for a laptop CPU:

* **Input sequence** of one item, ``T = 1 + P + L`` tokens: a learned first-position
  token ``[CLS]``, the ``P = (64 / 8)^2 = 64`` patch embeddings of its 64 x 64 image
  (8 x 8 pixel patches, linear projection, learned positions) and the ``L`` title
  tokens (word embedding + learned positions). ``[CLS]`` and the patches are *vision*
  tokens, the title tokens are *language* tokens.
* **Multiway blocks**: pre-norm Transformer blocks whose self-attention is *shared*
  by all tokens (so every title token can look at every patch), followed by a
  feed-forward network chosen per token: the vision expert ``V-FFN`` for vision
  tokens, the language expert ``L-FFN`` for title tokens. In the top ``vl_layers``
  blocks an image-text pair goes through a third, **vision-language expert**
  ``VL-FFN`` (BEiT-3 / VLMo); single-modality inputs keep their own experts there.
* **Masked multimodal modelling** (the ICA loss of the spec):
  ``L = CE(visual tokens of masked patches) + CE(words of masked title tokens)``,
  computed on two passes per batch, as BEiT-3 trains on pairs *and* on
  monomodal data: the image-text pair (≈ 40 % of the patches masked block-wise,
  ``pair_text_mask_ratio`` = 50 % of the title tokens masked), then in turn the image
  alone (masked image modelling) or the title alone (masked language modelling, 15 %).
  A masked patch is replaced by a learned ``[MASK]`` embedding, a masked word by the
  ``[MASK]`` token.
* **Visual tokens — a stand-in.** BEiT-3 predicts the codes of BEiT v2's VQ-KD
  tokenizer (a codebook distilled from CLIP). Neither it nor any pretrained image
  tokenizer can be had offline here, so :class:`PatchTokenizer` builds one from the
  dataset itself: a seeded k-means codebook (``codebook_size`` centroids) over the
  standardised pixels of 8 x 8 patches. Its codes say "what colour and texture is
  this patch", far less semantic than VQ-KD's, and that limits what masked image
  modelling can teach.
* **Title tokens**: the kit's own word tokeniser (:func:`alignrec_lite.utils.tokenize`,
  a vocabulary of the dataset's words seen at least ``min_word_count`` times, others
  ``[UNK]``), or, with ``tokenizer="minilm"``, the packaged MiniLM WordPiece tokenizer
  (offline), its ids compacted to those that occur in the dataset. The embeddings
  are learned from scratch either way: unlike BEiT-3, nothing here was pre-trained
  on web data.
* **Optional [CLS] bottleneck** (``cls_weight > 0``, off by default), from BEiT v2: a one-block head
  reads the final ``[CLS]`` output together with the patch/word outputs of a middle
  layer and must predict the masked tokens again — masked modelling alone never
  trains the first position directly.
* **Item features**: ``mm_feat.npy`` = the L2-normalised final output at position 0
  of the image-text pair, ``mm_feat_mask_image.npy`` / ``mm_feat_mask_text.npy`` =
  the same model's position-0 output with the image (resp. the title) left out of
  the sequence, as AlignRec computes its masked views. Items without a readable
  image get their text-only vector.

:func:`pretrain_multiway` is the counterpart of :func:`alignrec_lite.ica.pretrain_ica`
(same arguments, same files, checkpoints and manifest); ``alignrec-lite pretrain-ica
DIR --encoder multiway`` runs it, ``--no-pretrain`` keeps the random initialisation
(0 steps) for comparison.

Rooms: :mod:`.tokens` (patches, the visual and title tokenizers, masking), :mod:`.model`
(:class:`MultiwayConfig`, the blocks, :class:`MultiwayEncoder` and its loss) and :mod:`.pretrain`
(the items' content, encoding, checkpoints, :func:`pretrain_multiway`).
"""

from ..encoders import MASKED_FILES, MM_FILE
from .model import MultiwayBlock, MultiwayConfig, MultiwayEncoder, build_multiway
from .pretrain import (
    ENCODER_NAME,
    MultiwayContent,
    encode_items,
    encode_new_item,
    load_checkpoint,
    load_multiway,
    pretrain_multiway,
    title_patch_attention,
    title_tokenizer,
    train_step,
)
from .tokens import (
    MASK,
    PAD,
    SPECIALS,
    TOKENIZERS,
    UNK,
    PatchTokenizer,
    TitleTokenizer,
    block_mask,
    patchify,
    text_mask,
)

__all__ = [
    "ENCODER_NAME",
    "MASK",
    "MASKED_FILES",
    "MM_FILE",
    "PAD",
    "SPECIALS",
    "TOKENIZERS",
    "UNK",
    "MultiwayBlock",
    "MultiwayConfig",
    "MultiwayContent",
    "MultiwayEncoder",
    "PatchTokenizer",
    "TitleTokenizer",
    "block_mask",
    "build_multiway",
    "encode_items",
    "encode_new_item",
    "load_checkpoint",
    "load_multiway",
    "patchify",
    "pretrain_multiway",
    "text_mask",
    "title_patch_attention",
    "title_tokenizer",
    "train_step",
]
