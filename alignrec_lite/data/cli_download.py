"""Command-line faces of the real-data tools (registered by :mod:`alignrec_lite.cli`).

Adds::

    alignrec-lite data download movielens-small [--cache DIR] [--url URL] [--offline]
                                                [--out DIR --posters-dir DIR]
    alignrec-lite data download posters --links FILE --out DIR --api-key KEY
    alignrec-lite data import DIR [--name NAME]
    alignrec-lite data build amazon --release {2014,2023} --category Baby --out DIR
                                    [--reviews FILE_OR_URL] [--meta FILE_OR_URL] [--no-images]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

from ..errors import AlignRecError, ConfigError


def _add(sub: argparse._SubParsersAction, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _net_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=30, help="seconds to wait for data (default 30)")
    p.add_argument("--retries", type=int, default=4, help="extra attempts after a network error (default 4)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# ---------------------------------------------------------------- handlers
def _cmd_download_movielens(args: argparse.Namespace) -> int:
    from .download import download_movielens_small

    if (args.out is None) != (args.posters_dir is None):
        raise ConfigError("--out and --posters-dir go together", row="--out",
                          fix="pass both to build the MMRec folder after the download, or neither")
    folder = download_movielens_small(cache_dir=args.cache, url=args.url, offline=args.offline,
                                      progress=not args.quiet, timeout=args.timeout, retries=args.retries)
    print(f"ml-latest-small verified (official SHA-256 of every file): {folder}")
    if args.out is None:
        print(f"next: alignrec-lite data build movielens --ratings-dir {folder} --posters-dir POSTERS --out DIR")
        return 0
    if importlib.util.find_spec("alignrec_lite.data.movielens") is None:
        raise AlignRecError("this version of the kit has no MovieLens builder",
                            fix="build the folder with another version, or use the downloaded files directly")
    from .movielens import build_movielens

    out = build_movielens(args.out, ratings_dir=folder, posters_dir=args.posters_dir, seed=args.seed,
                          overwrite=args.overwrite, progress=not args.quiet)
    print(f"built {out}; check it with: alignrec-lite data check {out}")
    return 0


def _cmd_download_posters(args: argparse.Namespace) -> int:
    from .tmdb import REPORT_NAME, fetch_posters

    key = args.api_key or os.environ.get("TMDB_API_KEY") or os.environ.get("ALIGNREC_TMDB_API_KEY")
    report = fetch_posters(args.links, args.out, api_key=key or "", api_base=args.url, image_base=args.image_url,
                           workers=args.workers, rate_limit_per_s=args.rate, progress=not args.quiet,
                           timeout=args.timeout, retries=args.retries)
    print(f"posters: {report['downloaded']:,} downloaded, {report['already_present']:,} already there, "
          f"{report['missing_count']:,} without a poster (listed in {Path(args.out) / REPORT_NAME})")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from .amazon import import_mmrec, registry_path
    from .mmrec import format_stats

    entry = import_mmrec(args.dir, name=args.name, registry=args.registry)
    print(format_stats(entry["stats"]))
    print(f"registered {entry['name']!r} -> {entry['path']} (registry: {registry_path(args.registry)})")
    return 0


def _cmd_build_amazon(args: argparse.Namespace) -> int:
    from .amazon import build_amazon

    out = build_amazon(args.out, release=args.release, category=args.category, reviews=args.reviews,
                       meta=args.meta, images=not args.no_images, k=args.k, seed=args.seed, workers=args.workers,
                       overwrite=args.overwrite, progress=not args.quiet, name=args.name, cache_dir=args.cache,
                       offline=args.offline, timeout=args.timeout, retries=args.retries)
    print(f"check it with: alignrec-lite data check {out}")
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# ---------------------------------------------------------------- registration
def register_data_commands(data_sub: argparse._SubParsersAction, build_sub: argparse._SubParsersAction) -> None:
    """Add ``data download …``, ``data import`` and ``data build amazon`` to the parser.

    Args:
        data_sub: the sub-parsers of ``alignrec-lite data``.
        build_sub: the sub-parsers of ``alignrec-lite data build``.
    """
    dl = _add(data_sub, "download", "download a public dataset (checksums, resume, offline mode)",
              "alignrec-lite data download movielens-small --cache ~/.cache/alignrec-lite")
    dl_sub = dl.add_subparsers(dest="download_source", metavar="SOURCE")
    dl.set_defaults(func=lambda args: _usage(dl))

    p = _add(dl_sub, "movielens-small",
             "fetch GroupLens' ml-latest-small, verify every file's SHA-256 and optionally build it",
             "alignrec-lite data download movielens-small --out data/movielens --posters-dir posters/\n"
             "  ALIGNREC_OFFLINE=1 alignrec-lite data download movielens-small   # use only the cache")
    p.add_argument("--cache", help="cache folder (default $ALIGNREC_CACHE or ~/.cache/alignrec-lite)")
    p.add_argument("--url", help="mirror of ml-latest-small.zip (or set ALIGNREC_URL_MOVIELENS_SMALL)")
    p.add_argument("--offline", action="store_true", help="never use the network; say which file to place where")
    p.add_argument("--out", help="also build the MMRec folder here (needs --posters-dir)")
    p.add_argument("--posters-dir", help="folder of {movieId}.jpg posters (see `data download posters`)")
    p.add_argument("--seed", type=int, default=999, help="seed of the per-user split (default 999)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    _net_args(p)
    p.set_defaults(func=_cmd_download_movielens)

    p = _add(dl_sub, "posters", "fetch MovieLens posters from TMDB (API key needed; polite and resumable)",
             "alignrec-lite data download posters --links ~/.cache/alignrec-lite/ml-latest-small/links.csv "
             "--out posters/ --api-key $TMDB_API_KEY")
    p.add_argument("--links", required=True, help="MovieLens links.csv (movieId,imdbId,tmdbId)")
    p.add_argument("--out", required=True, help="posters folder; files are {movieId}.jpg")
    p.add_argument("--api-key", help="TMDB API v3 key (default $TMDB_API_KEY)")
    p.add_argument("--url", help="TMDB API base (default $ALIGNREC_URL_TMDB_API or https://api.themoviedb.org/3)")
    p.add_argument("--image-url", help="image base incl. size (default https://image.tmdb.org/t/p/w342)")
    p.add_argument("--workers", type=int, default=4, help="concurrent requests (default 4)")
    p.add_argument("--rate", type=float, default=20, help="requests per second, all workers together (default 20)")
    _net_args(p)
    p.set_defaults(func=_cmd_download_posters)

    p = _add(data_sub, "import", "validate an MMRec folder (e.g. from MMRec's Google Drive) and register it",
             "alignrec-lite data import ~/Downloads/baby --name baby")
    p.add_argument("dir", help="folder holding <name>.inter (and image_feat.npy, text_feat.npy …)")
    p.add_argument("--name", help="registry name (default: the .inter file's stem)")
    p.add_argument("--registry", help="registry file (default <cache>/datasets.json)")
    p.set_defaults(func=_cmd_import)

    p = _add(build_sub, "amazon", "build an MMRec folder from the Amazon review dumps (2014 or 2023)",
             "alignrec-lite data build amazon --release 2014 --category Baby --out data/baby\n"
             "  alignrec-lite data build amazon --release 2023 --category Baby_Products "
             "--reviews Baby_Products.jsonl.gz --meta meta_Baby_Products.jsonl.gz --out data/baby23")
    p.add_argument("--release", required=True, choices=["2014", "2023"], help="2014 = MMRec/AlignRec's data")
    p.add_argument("--category", required=True, help="e.g. Baby, Sports_and_Outdoors, Electronics (or baby, sports, elec)")
    p.add_argument("--reviews", help="review dump: file or URL (default: the official address)")
    p.add_argument("--meta", help="metadata dump: file or URL (default: the official address)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--name", help="dataset name (default MMRec's: baby, sports, elec …)")
    p.add_argument("--no-images", action="store_true", help="do not download item images")
    p.add_argument("--k", type=int, default=5, help="k of the iterative k-core (default 5)")
    p.add_argument("--seed", type=int, default=999, help="seed of the per-user split (default 999)")
    p.add_argument("--workers", type=int, default=8, help="concurrent image downloads (default 8)")
    p.add_argument("--cache", help="cache for dumps and images (default $ALIGNREC_CACHE or ~/.cache/alignrec-lite)")
    p.add_argument("--offline", action="store_true", help="use only cached downloads")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    _net_args(p)
    p.set_defaults(func=_cmd_build_amazon)
