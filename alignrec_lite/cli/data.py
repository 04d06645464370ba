"""``alignrec-lite data …``: build, check, download and import datasets.

::

    alignrec-lite data build toy --out DIR [--size smoke|default] [--seed N]
    alignrec-lite data build movielens --ratings-dir DIR --posters-dir DIR --out DIR
    alignrec-lite data build amazon --release {2014,2023} --category Baby --out DIR
                                    [--reviews FILE_OR_URL] [--meta FILE_OR_URL] [--no-images]
    alignrec-lite data check DATASET [--no-images]
    alignrec-lite data download movielens-small [--cache DIR] [--url URL] [--offline]
                                                [--out DIR --posters-dir DIR]
    alignrec-lite data download posters --links FILE --out DIR --api-key KEY
    alignrec-lite data import DIR [--name NAME]
"""

from __future__ import annotations

import argparse
import os
from contextlib import AbstractContextManager
from pathlib import Path

from ..errors import ConfigError
from .common import (
    Subcommands,
    add_command,
    add_dataset,
    add_network,
    add_overwrite,
    add_quiet,
    add_seed,
    add_subcommands,
    dataset_folder,
)


# ---------------------------------------------------------------------- handlers
def _build_lock(out: str) -> AbstractContextManager[Path]:
    """The lock of a build's ``--out``, taken before any work: a second build into it fails at once.

    The builder takes it again (re-entrantly) around the staging folder and the swap
    (:func:`alignrec_lite.files.replace_dir`); leftovers of a killed build are cleaned here.
    """
    from ..files import out_lock

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)  # where the lock file lives
    return out_lock(out)


def _cmd_build_toy(args: argparse.Namespace) -> int:
    from ..data.toy import build_toy

    with _build_lock(args.out):
        path = build_toy(args.out, size=args.size, seed=args.seed, overwrite=args.overwrite, progress=not args.quiet)
    return _print_check(path)


def _cmd_build_movielens(args: argparse.Namespace) -> int:
    from ..data.movielens import build_movielens

    with _build_lock(args.out):
        path = build_movielens(
            args.out,
            ratings_dir=args.ratings_dir,
            posters_dir=args.posters_dir,
            seed=args.seed,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    return _print_check(path)


def _cmd_build_amazon(args: argparse.Namespace) -> int:
    from ..data.amazon import build_amazon

    with _build_lock(args.out):
        out = build_amazon(
            args.out,
            release=args.release,
            category=args.category,
            reviews=args.reviews,
            meta=args.meta,
            images=not args.no_images,
            k=args.k,
            seed=args.seed,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=not args.quiet,
            name=args.name,
            cache_dir=args.cache,
            offline=args.offline,
            timeout=args.timeout,
            retries=args.retries,
        )
    print(f"check it with: alignrec-lite data check {out}")
    return 0


def _print_check(path: Path, images: bool = False) -> int:
    from ..data.mmrec import check_images, format_stats, load_mmrec

    ds = load_mmrec(path)
    n_img = check_images(ds) if images else None
    print(format_stats(ds.stats()))
    if n_img is not None:
        print(f"images       {n_img:,} checked, all readable")
    print(f"ok: {ds.path}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    return _print_check(dataset_folder(args), images=not args.no_images)


def _cmd_download_movielens(args: argparse.Namespace) -> int:
    from ..data.movielens import build_movielens, download_movielens_small

    if (args.out is None) != (args.posters_dir is None):
        raise ConfigError(
            "--out and --posters-dir go together",
            row="--out",
            fix="pass both to build the MMRec folder after the download, or neither",
        )
    folder = download_movielens_small(
        cache_dir=args.cache,
        url=args.url,
        offline=args.offline,
        progress=not args.quiet,
        timeout=args.timeout,
        retries=args.retries,
    )
    print(f"ml-latest-small verified (official SHA-256 of every file): {folder}")
    if args.out is None:
        print(f"next: alignrec-lite data build movielens --ratings-dir {folder} --posters-dir POSTERS --out DIR")
        return 0
    with _build_lock(args.out):
        out = build_movielens(
            args.out,
            ratings_dir=folder,
            posters_dir=args.posters_dir,
            seed=args.seed,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    print(f"built {out}; check it with: alignrec-lite data check {out}")
    return 0


def _cmd_download_posters(args: argparse.Namespace) -> int:
    from ..data.tmdb import REPORT_NAME, fetch_posters

    key = args.api_key or os.environ.get("TMDB_API_KEY") or os.environ.get("ALIGNREC_TMDB_API_KEY")
    report = fetch_posters(
        args.links,
        args.out,
        api_key=key or "",
        api_base=args.url,
        image_base=args.image_url,
        workers=args.workers,
        rate_limit_per_s=args.rate,
        progress=not args.quiet,
        timeout=args.timeout,
        retries=args.retries,
    )
    print(
        f"posters: {report['downloaded']:,} downloaded, {report['already_present']:,} already there, "
        f"{report['missing_count']:,} without a poster (listed in {Path(args.out) / REPORT_NAME})"
    )
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from ..data.catalog import import_mmrec, registry_path
    from ..data.mmrec import format_stats

    entry = import_mmrec(args.dir, name=args.name, registry=args.registry)
    print(format_stats(entry["stats"]))
    print(f"registered {entry['name']!r} -> {entry['path']} (registry: {registry_path(args.registry)})")
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# ---------------------------------------------------------------------- registration
def register(sub: Subcommands) -> None:
    """Add ``data`` and its sub-commands (build, check, download, import) to the ``alignrec-lite`` parser."""
    data = add_command(sub, "data", "build, check, download and import datasets", "alignrec-lite data check toy")
    data_sub = add_subcommands(data, "data_command", "DATA_COMMAND")
    _register_build(data_sub)

    c = add_command(
        data_sub, "check", "validate a dataset folder and print its statistics", "alignrec-lite data check data/toy"
    )
    add_dataset(c)
    c.add_argument("--no-images", action="store_true", help="skip opening every image")
    c.set_defaults(func=_cmd_check)

    _register_download(data_sub)

    p = add_command(
        data_sub,
        "import",
        "validate an MMRec folder (e.g. from MMRec's Google Drive) and register it",
        "alignrec-lite data import ~/Downloads/baby --name baby",
    )
    p.add_argument("dir", help="folder holding <name>.inter (and image_feat.npy, text_feat.npy …)")
    p.add_argument("--name", help="registry name (default: the .inter file's stem)")
    p.add_argument("--registry", help="registry file (default <cache>/datasets.json)")
    p.set_defaults(func=_cmd_import)


def _register_build(data_sub: Subcommands) -> None:
    build = add_command(
        data_sub, "build", "build an MMRec dataset folder", "alignrec-lite data build toy --out data/toy"
    )
    build_sub = add_subcommands(build, "build_source", "SOURCE")

    b = add_command(
        build_sub,
        "toy",
        "generate the toy shop (images + titles, seeded)",
        "alignrec-lite data build toy --out data/toy --size smoke --seed 0",
    )
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--size", choices=["smoke", "default"], default="default")
    add_seed(b, 0, "seed of the generator")
    add_overwrite(b, "replace an existing folder")
    add_quiet(b, "no progress bar")
    b.set_defaults(func=_cmd_build_toy)

    b = add_command(
        build_sub,
        "movielens",
        "build MovieLens (rating >= 4, 5-core) with posters",
        "alignrec-lite data build movielens --ratings-dir ml-latest-small --posters-dir posters --out data/ml",
    )
    b.add_argument("--ratings-dir", required=True, help="folder with ratings.csv and movies.csv")
    b.add_argument("--posters-dir", required=True, help="folder with {movieId}.jpg posters")
    b.add_argument("--out", required=True, help="output folder")
    add_seed(b, 999, "seed of the per-user split")
    add_overwrite(b, "replace an existing folder")
    add_quiet(b)
    b.set_defaults(func=_cmd_build_movielens)

    p = add_command(
        build_sub,
        "amazon",
        "build an MMRec folder from the Amazon review dumps (2014 or 2023)",
        "alignrec-lite data build amazon --release 2014 --category Baby --out data/baby\n"
        "  alignrec-lite data build amazon --release 2023 --category Baby_Products "
        "--reviews Baby_Products.jsonl.gz --meta meta_Baby_Products.jsonl.gz --out data/baby23",
    )
    p.add_argument("--release", required=True, choices=["2014", "2023"], help="2014 = MMRec/AlignRec's data")
    p.add_argument(
        "--category", required=True, help="e.g. Baby, Sports_and_Outdoors, Electronics (or baby, sports, elec)"
    )
    p.add_argument("--reviews", help="review dump: file or URL (default: the official address)")
    p.add_argument("--meta", help="metadata dump: file or URL (default: the official address)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--name", help="dataset name (default MMRec's: baby, sports, elec …)")
    p.add_argument("--no-images", action="store_true", help="do not download item images")
    p.add_argument("--k", type=int, default=5, help="k of the iterative k-core (default 5)")
    add_seed(p, 999, "seed of the per-user split")
    p.add_argument("--workers", type=int, default=8, help="concurrent image downloads (default 8)")
    p.add_argument("--cache", help="cache for dumps and images (default $ALIGNREC_CACHE or ~/.cache/alignrec-lite)")
    p.add_argument("--offline", action="store_true", help="use only cached downloads")
    add_overwrite(p, "replace an existing --out folder")
    add_network(p)
    p.set_defaults(func=_cmd_build_amazon)


def _register_download(data_sub: Subcommands) -> None:
    dl = add_command(
        data_sub,
        "download",
        "download a public dataset (checksums, resume, offline mode)",
        "alignrec-lite data download movielens-small --cache ~/.cache/alignrec-lite",
    )
    dl_sub = add_subcommands(dl, "download_source", "SOURCE")
    dl.set_defaults(func=lambda args: _usage(dl))

    p = add_command(
        dl_sub,
        "movielens-small",
        "fetch GroupLens' ml-latest-small, verify every file's SHA-256 and optionally build it",
        "alignrec-lite data download movielens-small --out data/movielens --posters-dir posters/\n"
        "  ALIGNREC_OFFLINE=1 alignrec-lite data download movielens-small   # use only the cache",
    )
    p.add_argument("--cache", help="cache folder (default $ALIGNREC_CACHE or ~/.cache/alignrec-lite)")
    p.add_argument("--url", help="mirror of ml-latest-small.zip (or set ALIGNREC_URL_MOVIELENS_SMALL)")
    p.add_argument("--offline", action="store_true", help="never use the network; say which file to place where")
    p.add_argument("--out", help="also build the MMRec folder here (needs --posters-dir)")
    p.add_argument("--posters-dir", help="folder of {movieId}.jpg posters (see `data download posters`)")
    add_seed(p, 999, "seed of the per-user split")
    add_overwrite(p, "replace an existing --out folder")
    add_network(p)
    p.set_defaults(func=_cmd_download_movielens)

    p = add_command(
        dl_sub,
        "posters",
        "fetch MovieLens posters from TMDB (API key needed; polite and resumable)",
        "alignrec-lite data download posters --links ~/.cache/alignrec-lite/ml-latest-small/links.csv "
        "--out posters/ --api-key $TMDB_API_KEY",
    )
    p.add_argument("--links", required=True, help="MovieLens links.csv (movieId,imdbId,tmdbId)")
    p.add_argument("--out", required=True, help="posters folder; files are {movieId}.jpg")
    p.add_argument("--api-key", help="TMDB API v3 key (default $TMDB_API_KEY)")
    p.add_argument("--url", help="TMDB API base (default $ALIGNREC_URL_TMDB_API or https://api.themoviedb.org/3)")
    p.add_argument("--image-url", help="image base incl. size (default https://image.tmdb.org/t/p/w342)")
    p.add_argument("--workers", type=int, default=4, help="concurrent requests (default 4)")
    p.add_argument("--rate", type=float, default=20, help="requests per second, all workers together (default 20)")
    add_network(p)
    p.set_defaults(func=_cmd_download_posters)
