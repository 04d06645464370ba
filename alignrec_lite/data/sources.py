"""Where the real datasets come from: addresses, known checksums, overrides.

Links rot (MMRec and AlignRec users keep asking where the data went), so every
address here can be replaced without editing code:

1. the ``--url`` flag of the command (highest priority),
2. the environment variable named in :data:`SOURCES` (``ALIGNREC_URL_…``),
3. the default below.

Addresses may contain ``{category}``, filled with the source's own spelling of
the category (``Baby`` for Amazon 2014, ``Baby_Products`` for 2023). The same
information, with licences and citations, is in ``datasets/registry.json`` and
the dataset cards in ``datasets/`` (a test keeps the two in sync).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import ConfigError


@dataclass(frozen=True)
class Source:
    """One downloadable resource.

    Attributes:
        key: the name used in code and in ``datasets/registry.json``.
        url: default address (may contain ``{category}``).
        env: environment variable that overrides ``url``.
        description: one line for humans.
        sha256: SHA-256 of the downloaded file itself, where known.
        files: SHA-256 of the files *inside* an archive, where known.
    """

    key: str
    url: str
    env: str
    description: str
    sha256: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)


#: SHA-256 of the files of GroupLens' ml-latest-small (generated 2018-09-26), as
#: extracted from ml-latest-small.zip. Computed from an unmodified copy.
MOVIELENS_SMALL_FILES: Mapping[str, str] = MappingProxyType(
    {
        "README.txt": "e165937702ae1fac9237b6bd377f03d027f7ef97175d4a04a203e8b12d5516ea",
        "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
        "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
        "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
        "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
    }
)

_SOURCES = [
    Source(
        "movielens-small",
        "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        "ALIGNREC_URL_MOVIELENS_SMALL",
        "GroupLens MovieLens ml-latest-small (zip)",
        files=MOVIELENS_SMALL_FILES,
    ),
    Source(
        "amazon2014-reviews",
        "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/reviews_{category}_5.json.gz",
        "ALIGNREC_URL_AMAZON2014_REVIEWS",
        "Amazon review data 2014 (McAuley): 5-core reviews, JSON lines",
    ),
    Source(
        "amazon2014-meta",
        "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/meta_{category}.json.gz",
        "ALIGNREC_URL_AMAZON2014_META",
        "Amazon review data 2014 (McAuley): item metadata, Python-literal lines",
    ),
    Source(
        "amazon2023-reviews",
        "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/review_categories/{category}.jsonl.gz",
        "ALIGNREC_URL_AMAZON2023_REVIEWS",
        "Amazon Reviews'23 (McAuley Lab): reviews, JSON lines",
    ),
    Source(
        "amazon2023-meta",
        "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/meta_categories/meta_{category}.jsonl.gz",
        "ALIGNREC_URL_AMAZON2023_META",
        "Amazon Reviews'23 (McAuley Lab): item metadata, JSON lines",
    ),
    Source(
        "tmdb-api",
        "https://api.themoviedb.org/3",
        "ALIGNREC_URL_TMDB_API",
        "The Movie Database (TMDB) API v3 base address",
    ),
    Source(
        "tmdb-image",
        "https://image.tmdb.org/t/p/w342",
        "ALIGNREC_URL_TMDB_IMAGE",
        "TMDB image base address with the poster size (w342)",
    ),
]

#: All known sources by key.
SOURCES: Mapping[str, Source] = MappingProxyType({s.key: s for s in _SOURCES})

#: Category spellings of the Amazon 2014 release (file names on the SNAP mirror).
AMAZON_2014_CATEGORIES = (
    "Amazon_Instant_Video",
    "Apps_for_Android",
    "Automotive",
    "Baby",
    "Beauty",
    "Books",
    "CDs_and_Vinyl",
    "Cell_Phones_and_Accessories",
    "Clothing_Shoes_and_Jewelry",
    "Digital_Music",
    "Electronics",
    "Grocery_and_Gourmet_Food",
    "Health_and_Personal_Care",
    "Home_and_Kitchen",
    "Kindle_Store",
    "Movies_and_TV",
    "Musical_Instruments",
    "Office_Products",
    "Patio_Lawn_and_Garden",
    "Pet_Supplies",
    "Sports_and_Outdoors",
    "Tools_and_Home_Improvement",
    "Toys_and_Games",
    "Video_Games",
)
#: Category spellings of the Amazon Reviews'23 release.
AMAZON_2023_CATEGORIES = (
    "All_Beauty",
    "Amazon_Fashion",
    "Appliances",
    "Arts_Crafts_and_Sewing",
    "Automotive",
    "Baby_Products",
    "Beauty_and_Personal_Care",
    "Books",
    "CDs_and_Vinyl",
    "Cell_Phones_and_Accessories",
    "Clothing_Shoes_and_Jewelry",
    "Digital_Music",
    "Electronics",
    "Gift_Cards",
    "Grocery_and_Gourmet_Food",
    "Handmade_Products",
    "Health_and_Household",
    "Health_and_Personal_Care",
    "Home_and_Kitchen",
    "Industrial_and_Scientific",
    "Kindle_Store",
    "Magazine_Subscriptions",
    "Movies_and_TV",
    "Musical_Instruments",
    "Office_Products",
    "Patio_Lawn_and_Garden",
    "Pet_Supplies",
    "Software",
    "Sports_and_Outdoors",
    "Subscription_Boxes",
    "Tools_and_Home_Improvement",
    "Toys_and_Games",
    "Unknown",
    "Video_Games",
)
# Short names used by MMRec (baby, sports, elec, clothing) and friendly aliases.
_ALIASES = {
    "baby": ("Baby", "Baby_Products"),
    "sports": ("Sports_and_Outdoors", "Sports_and_Outdoors"),
    "elec": ("Electronics", "Electronics"),
    "electronics": ("Electronics", "Electronics"),
    "clothing": ("Clothing_Shoes_and_Jewelry", "Clothing_Shoes_and_Jewelry"),
}
_MMREC_NAMES = {
    "Baby": "baby",
    "Baby_Products": "baby",
    "Sports_and_Outdoors": "sports",
    "Electronics": "elec",
    "Clothing_Shoes_and_Jewelry": "clothing",
}

#: Statistics MMRec publishes for its 2014 5-core builds (ALIGNREC_SPEC §3.1).
EXPECTED_STATS_2014: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        "Baby": {"users": 19445, "items": 7050, "interactions": 160792, "train": 118551, "valid": 20559, "test": 21682},
        "Sports_and_Outdoors": {"users": 35598, "items": 18357, "interactions": 296337},
        "Electronics": {"users": 192403, "items": 63001, "interactions": 1689188},
    }
)


def source_url(key: str, override: str | None = None, **fields: str) -> str:
    """The address to use for source ``key``: ``override`` > environment variable > default.

    Args:
        key: a key of :data:`SOURCES`.
        override: the ``--url`` value, if the user gave one.
        **fields: values for placeholders such as ``{category}``.

    Returns:
        The address with the placeholders filled in.

    Raises:
        ConfigError: unknown key, or a placeholder without a value.

    >>> source_url("amazon2014-meta", category="Baby")
    'http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/meta_Baby.json.gz'
    """
    if key not in SOURCES:
        raise ConfigError(f"unknown data source {key!r}", row="source", fix=f"use one of {', '.join(SOURCES)}")
    src = SOURCES[key]
    url = override or os.environ.get(src.env) or src.url
    try:
        return re.sub(r"\{(\w+)\}", lambda m: str(fields[m.group(1)]), url)
    except KeyError as exc:
        raise ConfigError(
            f"the address {url!r} has a placeholder {{{exc.args[0]}}} without a value",
            row=src.env,
            fix="remove the placeholder or give the value",
        ) from None


def amazon_category(release: str, category: str) -> tuple[str, str]:
    """Resolve a category name for an Amazon release.

    Args:
        release: ``"2014"`` or ``"2023"``.
        category: a full name (``Sports_and_Outdoors``), a case variant, or a short
            alias (``baby``, ``sports``, ``elec``, ``clothing``).

    Returns:
        ``(the release's file spelling, the dataset name)``; the dataset name is
        MMRec's (``baby``, ``sports``, ``elec``, ``clothing``) where one exists,
        with ``_2023`` appended for the 2023 release.

    Raises:
        ConfigError: unknown release or category.

    >>> amazon_category("2014", "baby"), amazon_category("2023", "Baby")
    (('Baby', 'baby'), ('Baby_Products', 'baby_2023'))
    """
    release = str(release)
    if release not in ("2014", "2023"):
        raise ConfigError(f"unknown Amazon release {release!r}", row="--release", fix="use 2014 or 2023")
    known = AMAZON_2014_CATEGORIES if release == "2014" else AMAZON_2023_CATEGORIES
    key = category.strip().replace(" ", "_").replace("&", "and").replace(",", "")
    if key.lower() in _ALIASES:
        full = _ALIASES[key.lower()][0 if release == "2014" else 1]
    else:
        by_lower = {c.lower(): c for c in known}
        if key.lower() not in by_lower:
            raise ConfigError(
                f"unknown Amazon {release} category {category!r}",
                row="--category",
                fix=f"use one of {', '.join(known)} (or baby, sports, elec, clothing)",
            )
        full = by_lower[key.lower()]
    name = _MMREC_NAMES.get(full, full.lower())
    return full, name if release == "2014" else f"{name}_2023"


def registry_entries() -> dict:
    """The sources as plain data, in the layout of ``datasets/registry.json``'s ``sources`` key."""
    out = {}
    for s in _SOURCES:
        entry = {"url": s.url, "env": s.env, "description": s.description}
        if s.sha256:
            entry["sha256"] = s.sha256
        if s.files:
            entry["files"] = dict(s.files)
        out[s.key] = entry
    return out
