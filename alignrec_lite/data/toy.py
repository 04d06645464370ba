"""The generated "toy shop": a small multimodal dataset whose ground truth is known.

Every item is a product with four content attributes — *category* (drawn as a
shape), *colour*, *pattern* and *brand* — a rendered 64x64 RGB image and a short
title. The two modalities deliberately carry **different facts**, the situation
AlignRec's inter-content alignment (ICA, CIKM 2024, §3.2) is meant to handle:

* the **image** shows category, colour and pattern, never the brand;
* the **title** always names the brand and the category (with synonyms: "cup" or
  "mug", "crimson" or "red"), omits the pattern for about 40 % of the items (then
  it is visible only in the image) and the colour for about 20 %.

Users have latent tastes over the four attributes (Dirichlet weights). Each
interaction is drawn from a mixture of a taste-based choice (a softmax over the
user's affinity, tilted by popularity) and a pure popularity choice, where item
popularity follows a Zipf law, so the item distribution has a long tail.
Timestamps increase per user; the split is MMRec's random per-user split
(ALIGNREC_SPEC §3.4) via :func:`~alignrec_lite.data.split.mmrec_split`.

The generator is deterministic given ``seed`` and runs in about a second on a
CPU. The default and SMOKE folders are bundled in ``datasets/`` (see
``datasets/toy-shop.md``) together with honest hand-made attribute features
(:func:`~alignrec_lite.data.toy_features.attribute_features`), so models that need content features run without
any encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..files import replace_dir
from .mmrec import RecDataset, load_mmrec
from .mmrec_files import write_mmrec_files
from .split import mmrec_split

GENERATOR_VERSION = "1"
IMAGE_SIZE = 64

# --------------------------------------------------------------------- vocabulary
CATEGORIES = ("mug", "t-shirt", "lamp", "bag", "vase", "hat")
CATEGORY_WORDS = {
    "mug": ("mug", "cup"),
    "t-shirt": ("t-shirt", "tee", "shirt"),
    "lamp": ("lamp", "light"),
    "bag": ("bag", "tote", "handbag"),
    "vase": ("vase", "vessel"),
    "hat": ("hat", "cap"),
}
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white")
COLOUR_RGB = {
    "red": (200, 30, 40),
    "blue": (40, 80, 190),
    "green": (40, 150, 70),
    "yellow": (235, 200, 40),
    "purple": (120, 60, 160),
    "orange": (240, 130, 30),
    "black": (35, 35, 35),
    "white": (250, 250, 250),
}
COLOUR_WORDS = {
    "red": ("red", "crimson", "scarlet"),
    "blue": ("blue", "navy", "cobalt"),
    "green": ("green", "emerald", "olive"),
    "yellow": ("yellow", "golden", "mustard"),
    "purple": ("purple", "violet", "plum"),
    "orange": ("orange", "tangerine", "amber"),
    "black": ("black", "charcoal", "ebony"),
    "white": ("white", "ivory", "cream"),
}
PATTERNS = ("solid", "stripes", "dots", "checks")
PATTERN_WORDS = {
    "solid": ("plain", "solid"),
    "stripes": ("striped", "stripy", "pinstripe"),
    "dots": ("dotted", "polka-dot", "spotted"),
    "checks": ("checked", "plaid", "gingham"),
}
BRANDS = ("Lumen", "Norda", "Kivo", "Brisa", "Oakfield", "Tamsin", "Velo", "Quill", "Marlo", "Zephyr")
FILLERS = ("classic", "everyday", "handmade", "mini", "deluxe")  # words that carry no attribute
BACKGROUND = (226, 222, 214)
OUTLINE = (70, 70, 70)


@dataclass(frozen=True)
class ToySize:
    """Size preset of the generator.

    Attributes:
        n_items: items generated (items nobody picked are dropped afterwards).
        n_users: users generated; each gets at least 5 interactions.
        mean_extra: median number of interactions per user above the minimum of 5.
    """

    n_items: int
    n_users: int
    mean_extra: float


SIZES = {
    "default": ToySize(n_items=400, n_users=600, mean_extra=8.0),
    "smoke": ToySize(n_items=120, n_users=150, mean_extra=6.0),
}
FOLDERS = {"default": "toy-shop", "smoke": "smoke-shop"}

# generative constants (documented in datasets/toy-shop.md)
ZIPF_EXPONENT = 1.2  # popularity of the item at popularity rank r is proportional to r^-1.2
DIRICHLET_ALPHA = {"category": 0.25, "colour": 0.25, "pattern": 0.45, "brand": 0.25}
TASTE_WEIGHT = {"category": 2.0, "colour": 1.5, "pattern": 1.0, "brand": 1.0}
POP_TILT = 0.6  # exponent of popularity inside the taste-based choice
POP_MIX = 0.15  # share of interactions drawn from popularity alone
P_OMIT_PATTERN = 0.4
P_OMIT_COLOUR = 0.2
P_FILLER = 0.3


def _check_size(size: str) -> ToySize:
    if size not in SIZES:
        raise ConfigError(f"unknown toy size {size!r}", row="size", fix=f"use one of {sorted(SIZES)}")
    return SIZES[size]


# ------------------------------------------------------------------------ images
def _shape_primitives(category: str) -> list[tuple]:
    """Canonical drawing of each category on a 64x64 canvas: (kind, coords[, width])."""
    if category == "mug":
        return [("rect", (17, 18, 41, 52)), ("arc", (34, 24, 54, 44), 5)]
    if category == "t-shirt":
        return [
            (
                "poly",
                (
                    (18, 12),
                    (27, 9),
                    (37, 9),
                    (46, 12),
                    (57, 24),
                    (49, 31),
                    (46, 27),
                    (46, 55),
                    (18, 55),
                    (18, 27),
                    (15, 31),
                    (7, 24),
                ),
            )
        ]
    if category == "lamp":
        return [
            ("poly", ((21, 9), (43, 9), (53, 33), (11, 33))),
            ("rect", (29, 33, 35, 50)),
            ("ellipse", (18, 47, 46, 57)),
        ]
    if category == "bag":
        return [("rect", (12, 24, 52, 55)), ("arc", (20, 9, 44, 37), 5)]
    if category == "vase":
        return [("ellipse", (14, 26, 50, 58)), ("rect", (25, 12, 39, 32)), ("rect", (21, 7, 43, 13))]
    if category == "hat":
        return [("ellipse", (4, 40, 60, 53)), ("rect", (18, 18, 46, 47)), ("ellipse", (18, 10, 46, 28))]
    raise ValueError(category)


def _shift(coords, dx: int, dy: int):
    if isinstance(coords[0], tuple):
        return tuple((x + dx, y + dy) for x, y in coords)
    x0, y0, x1, y1 = coords
    return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def _pattern_rgb(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    lum = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255.0
    if lum < 0.6:  # dark colour: lighter pattern
        return tuple(int(round(c + 0.6 * (255 - c))) for c in rgb)
    return tuple(int(round(c * 0.55)) for c in rgb)  # light colour: darker pattern


def render_item(category: str, colour: str, pattern: str, *, dx: int = 0, dy: int = 0):
    """Draw one item: its category's shape, filled with its colour and pattern.

    The drawing uses only integer PIL primitives (no anti-aliasing), so it is the
    same pixel for pixel on every platform. The brand is never drawn.

    Args:
        category, colour, pattern: attribute values (see ``CATEGORIES`` etc.).
        dx, dy: small offset of the shape in pixels (per-item variation).

    Returns:
        A ``PIL.Image.Image`` in RGB mode, ``IMAGE_SIZE`` x ``IMAGE_SIZE``.
    """
    from PIL import Image, ImageChops, ImageDraw

    s = IMAGE_SIZE
    mask = Image.new("L", (s, s), 0)
    md = ImageDraw.Draw(mask)
    for prim in _shape_primitives(category):
        kind, coords = prim[0], _shift(prim[1], dx, dy)
        if kind == "rect":
            md.rectangle(coords, fill=255)
        elif kind == "ellipse":
            md.ellipse(coords, fill=255)
        elif kind == "poly":
            md.polygon(coords, fill=255)
        elif kind == "arc":
            md.arc(coords, start=0, end=360, fill=255, width=prim[2])
    base = COLOUR_RGB[colour]
    fill = Image.new("RGB", (s, s), base)
    fd = ImageDraw.Draw(fill)
    pc = _pattern_rgb(base)
    if pattern == "stripes":
        for y in range(0, s, 8):
            fd.rectangle((0, y, s - 1, y + 3), fill=pc)
    elif pattern == "dots":
        for j, y in enumerate(range(2, s, 9)):
            for x in range(2 + (j % 2) * 4, s, 9):
                fd.ellipse((x, y, x + 4, y + 4), fill=pc)
    elif pattern == "checks":
        for y in range(0, s, 6):
            for x in range(0, s, 6):
                if (x // 6 + y // 6) % 2 == 0:
                    fd.rectangle((x, y, x + 5, y + 5), fill=pc)
    img = Image.new("RGB", (s, s), BACKGROUND)
    img.paste(fill, (0, 0), mask)
    # one-pixel outline: mask pixels with a background neighbour (binary erosion)
    from PIL import ImageFilter

    eroded = mask.filter(ImageFilter.MinFilter(3))
    edge = ImageChops.subtract(mask, eroded)
    img.paste(Image.new("RGB", (s, s), OUTLINE), (0, 0), edge)
    return img


# ------------------------------------------------------------------------- text
def make_title(
    rng: np.random.Generator, category: str, colour: str, pattern: str, brand: str
) -> tuple[str, bool, bool]:
    """Compose a product title with synonyms and omissions.

    Returns:
        ``(title, colour named in the title, pattern named in the title)``.
    """
    has_colour = bool(rng.random() >= P_OMIT_COLOUR)
    has_pattern = bool(rng.random() >= P_OMIT_PATTERN)
    filler = FILLERS[rng.integers(len(FILLERS))] if rng.random() < P_FILLER else None
    words = [brand]
    if filler is not None:
        words.append(filler)
    if has_colour:
        words.append(COLOUR_WORDS[colour][rng.integers(len(COLOUR_WORDS[colour]))])
    if has_pattern:
        words.append(PATTERN_WORDS[pattern][rng.integers(len(PATTERN_WORDS[pattern]))])
    words.append(CATEGORY_WORDS[category][rng.integers(len(CATEGORY_WORDS[category]))])
    return " ".join(words), has_colour, has_pattern


def text_vocabulary() -> list[str]:
    """Every word a toy title can contain (fixed order), the text features' columns."""
    words: list[str] = [b.lower() for b in BRANDS] + list(FILLERS)
    for table in (COLOUR_WORDS, PATTERN_WORDS, CATEGORY_WORDS):
        for syn in table.values():
            words.extend(syn)
    return list(dict.fromkeys(words))


# -------------------------------------------------------------------- generator
def generate_toy(*, size: str = "default", seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Generate the toy shop in memory (no images, no files).

    Args:
        size: ``"default"`` (~400 items, 600 users) or ``"smoke"`` (~120, 150).
        seed: seed of every random choice.

    Returns:
        ``(inter, items, user_raw_ids)``: ``inter`` has columns userID, itemID,
        rating, timestamp, x_label (sorted by user then time); ``items`` has
        itemID, raw_id, text, image, category, colour, pattern, brand,
        popularity, text_has_colour, text_has_pattern, plus the image offsets
        ``dx``/``dy`` (dropped before writing).
    """
    cfg = _check_size(size)
    ss = np.random.SeedSequence(seed)
    rng_items, rng_users = (np.random.default_rng(s) for s in ss.spawn(2))
    n_i, n_u = cfg.n_items, cfg.n_users

    # items: attributes, popularity (Zipf over a random rank order), titles
    cat = rng_items.integers(len(CATEGORIES), size=n_i)
    col = rng_items.integers(len(COLOURS), size=n_i)
    pat = rng_items.integers(len(PATTERNS), size=n_i)
    brand = rng_items.integers(len(BRANDS), size=n_i)
    rank = rng_items.permutation(n_i) + 1
    pop = rank.astype(np.float64) ** -ZIPF_EXPONENT
    pop /= pop.sum()  # (n_items,)
    offsets = rng_items.integers(-3, 4, size=(n_i, 2))
    titles, has_c, has_p = [], [], []
    for i in range(n_i):
        t, c, p = make_title(rng_items, CATEGORIES[cat[i]], COLOURS[col[i]], PATTERNS[pat[i]], BRANDS[brand[i]])
        titles.append(t)
        has_c.append(c)
        has_p.append(p)

    # users: Dirichlet tastes -> affinity (n_users, n_items)
    attrs = {"category": cat, "colour": col, "pattern": pat, "brand": brand}
    n_vals = {"category": len(CATEGORIES), "colour": len(COLOURS), "pattern": len(PATTERNS), "brand": len(BRANDS)}
    affinity = np.zeros((n_u, n_i))
    for name, codes in attrs.items():
        pref = rng_users.dirichlet(np.full(n_vals[name], DIRICHLET_ALPHA[name]), size=n_u)  # (n_users, n_vals)
        affinity += TASTE_WEIGHT[name] * np.log(np.maximum(pref, 1e-6))[:, codes]  # (n_users, n_items)
    logits = affinity + POP_TILT * np.log(pop)[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    taste = np.exp(logits)
    taste /= taste.sum(axis=1, keepdims=True)  # (n_users, n_items)
    choice = (1 - POP_MIX) * taste + POP_MIX * pop[None, :]
    cap = min(80, n_i // 3)
    n_per_user = 5 + np.minimum(np.floor(rng_users.lognormal(np.log(cfg.mean_extra), 0.8, size=n_u)), cap - 5)
    n_per_user = n_per_user.astype(np.int64)

    rows_u, rows_i, rows_r, rows_t = [], [], [], []
    for u in range(n_u):
        p = choice[u] / choice[u].sum()
        picked = rng_users.choice(n_i, size=n_per_user[u], replace=False, p=p)  # in draw order
        # rating 1..5: quintile of the item's affinity among all items for this user
        pct = (affinity[u][None, :] < affinity[u][picked][:, None]).mean(axis=1)  # share liked less
        stars = np.minimum(1 + np.floor(5 * pct), 5)
        start = 1_600_000_000 + int(rng_users.integers(0, 90 * 86400))
        gaps = np.ceil(rng_users.exponential(2 * 86400, size=len(picked))).astype(np.int64) + 1
        rows_u.append(np.full(len(picked), u))
        rows_i.append(picked)
        rows_r.append(stars)
        rows_t.append(start + np.cumsum(gaps))
    u_arr = np.concatenate(rows_u)
    i_arr = np.concatenate(rows_i)

    # drop items nobody picked, re-index the rest in raw-ID order
    used = np.zeros(n_i, dtype=bool)
    used[i_arr] = True
    new_id = np.cumsum(used) - 1
    kept = np.flatnonzero(used)
    inter = pd.DataFrame(
        {
            "userID": u_arr.astype(np.int64),
            "itemID": new_id[i_arr].astype(np.int64),
            "rating": np.concatenate(rows_r).astype(np.int64),
            "timestamp": np.concatenate(rows_t).astype(np.int64),
        }
    )
    inter["x_label"] = mmrec_split(inter["userID"].to_numpy(), seed=seed)
    items = pd.DataFrame(
        {
            "itemID": np.arange(len(kept), dtype=np.int64),
            "raw_id": [f"item-{i + 1:04d}" for i in kept],
            "text": [titles[i] for i in kept],
            "image": [f"images/{j}.png" for j in range(len(kept))],
            "category": [CATEGORIES[c] for c in cat[kept]],
            "colour": [COLOURS[c] for c in col[kept]],
            "pattern": [PATTERNS[c] for c in pat[kept]],
            "brand": [BRANDS[c] for c in brand[kept]],
            "popularity": np.round(pop[kept], 8),
            "text_has_colour": [has_c[i] for i in kept],
            "text_has_pattern": [has_p[i] for i in kept],
            "dx": offsets[kept, 0],
            "dy": offsets[kept, 1],
        }
    )
    users = [f"u{u + 1:04d}" for u in range(n_u)]
    return inter, items, users


def toy_stats(inter: pd.DataFrame, items: pd.DataFrame) -> dict:
    """Statistics written into the card: counts, split sizes, long-tail shares."""
    n_users = int(inter["userID"].max()) + 1
    n_items = len(items)
    counts = np.sort(np.bincount(inter["itemID"], minlength=n_items))[::-1]
    top10 = max(1, int(round(0.1 * n_items)))
    per_user = np.bincount(inter["userID"], minlength=n_users)
    lab = np.bincount(inter["x_label"], minlength=3)
    return {
        "users": n_users,
        "items": n_items,
        "interactions": int(len(inter)),
        "train": int(lab[0]),
        "valid": int(lab[1]),
        "test": int(lab[2]),
        "sparsity_percent": round(100.0 * (1 - len(inter) / (n_users * n_items)), 4),
        "interactions_per_user_min": int(per_user.min()),
        "interactions_per_user_mean": round(float(per_user.mean()), 2),
        "interactions_per_user_max": int(per_user.max()),
        "top10pct_items_share": round(float(counts[:top10].sum() / counts.sum()), 4),
        "items_with_at_most_5_interactions": int((counts <= 5).sum()),
        "titles_without_pattern": int((~items["text_has_pattern"].astype(bool)).sum()),
        "titles_without_colour": int((~items["text_has_colour"].astype(bool)).sum()),
    }


def build_toy(
    out: str | Path,
    *,
    size: str = "default",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate the toy shop and write it as an MMRec folder (atomically).

    Writes ``toy.inter``, ``u_id_mapping.csv``, ``i_id_mapping.csv``,
    ``items.csv``, ``images/<itemID>.png`` and ``dataset.json``. No feature files:
    those come from the encoders, or from :func:`write_attribute_features`.

    Args:
        out: destination folder.
        size: ``"default"`` or ``"smoke"``.
        seed: generator seed (also the split seed).
        overwrite: replace an existing folder.
        progress: show a progress bar while drawing the images.

    Returns:
        The folder written.

    Raises:
        DataError: ``out`` exists and ``overwrite`` is False.
        ConfigError: unknown ``size``.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    _check_size(size)
    if out.exists() and not overwrite:
        raise DataError(
            "the output folder already exists",
            path=out,
            fix="pass overwrite=True (--overwrite) or choose another folder",
        )
    inter, items, users = generate_toy(size=size, seed=seed)
    card = {
        "name": FOLDERS[size],
        "source": "generated",
        "generator": "alignrec_lite.data.toy.build_toy",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": size,
        "image_size": [IMAGE_SIZE, IMAGE_SIZE],
        "stats": toy_stats(inter, items),
        "modalities": {
            "image": "shape = category, fill = colour + pattern; never the brand",
            "text": "brand + [colour] + [pattern] + category with synonyms; pattern omitted for "
            f"~{P_OMIT_PATTERN:.0%}, colour for ~{P_OMIT_COLOUR:.0%} of the items",
        },
    }
    with replace_dir(out, overwrite=overwrite) as tmp:  # the old folder stays whole until the swap
        (tmp / "images").mkdir()
        rows = items.itertuples(index=False)
        for row in tqdm(rows, total=len(items), desc="drawing items", disable=not progress):
            img = render_item(row.category, row.colour, row.pattern, dx=int(row.dx), dy=int(row.dy))
            img.save(tmp / row.image, format="PNG", optimize=True)
        write_mmrec_files(
            tmp,
            name="toy",
            inter=inter,
            user_raw_ids=users,
            item_raw_ids=items["raw_id"],
            raw_id_names=("user", "item"),
            items=items.drop(columns=["dx", "dy"]),
            card=card,
        )
    return out


# ------------------------------------------------------------------ bundled copies
def toy_path(size: str = "default") -> Path:
    """The bundled toy folder: ``datasets/toy-shop`` or ``datasets/smoke-shop``.

    Raises:
        ConfigError: unknown size.
        DataError: the folder is missing (e.g. an installed wheel without data).
    """
    import alignrec_lite

    _check_size(size)
    path = Path(alignrec_lite.__file__).resolve().parents[1] / "datasets" / FOLDERS[size]
    if not (path / "toy.inter").exists():
        raise DataError(
            "the bundled toy dataset is missing",
            path=path,
            fix="run from a source checkout, or rebuild it with "
            f"write_attribute_features(build_toy({str(path)!r}, size={size!r}, seed=0)) "
            "(from alignrec_lite.data.toy and alignrec_lite.data.toy_features)",
        )
    return path


def load_toy(size: str = "default", *, load_features: bool = True) -> RecDataset:
    """Load the bundled toy shop (``"default"``) or its SMOKE copy (``"smoke"``)."""
    return load_mmrec(toy_path(size), load_features=load_features)
