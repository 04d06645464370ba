"""``make lab``: start JupyterLab on the notebooks, the same way for a learner and for the browser tests.

The command is built in one place (:func:`lab_command`) so that the browser test
suite (``tests/test_browser.py``) starts exactly what ``make lab`` starts:

* bound to ``127.0.0.1`` only, with a fixed token (``--token``, default
  :data:`DEFAULT_TOKEN`; set ``LAB_TOKEN=...`` with make to choose another), no
  browser opened (the URL is printed instead: click it, or open it in any browser);
* opened on ``notebooks/``;
* ``--allow-root`` only when the user is root (containers, cloud notebooks), where
  JupyterLab otherwise refuses to start;
* nothing in its environment chooses a matplotlib backend: ipykernel selects its
  inline backend only when ``MPLBACKEND`` is unset, so an inherited ``MPLBACKEND=Agg``
  would silently turn every figure into the text ``<Figure size ...>``. The variable
  is removed from the server's (and so every kernel's) environment.

Run ``python -m alignrec_lite.lab --help`` for the options.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_TOKEN = "alignrec-lite"
DEFAULT_PORT = 8888


def is_root() -> bool:
    """Whether this process runs as root (JupyterLab then needs ``--allow-root``)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_url(port: int = DEFAULT_PORT, token: str = DEFAULT_TOKEN, path: str = "lab") -> str:
    """The URL a browser opens: ``http://127.0.0.1:PORT/PATH?token=TOKEN``."""
    return f"http://127.0.0.1:{port}/{path.lstrip('/')}?token={token}"


def lab_command(
    root: str | Path,
    *,
    port: int = DEFAULT_PORT,
    token: str = DEFAULT_TOKEN,
    jupyter: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``jupyter lab`` command line that ``make lab`` runs.

    Args:
        root: the folder JupyterLab opens on (``notebooks/``).
        port: the port (JupyterLab tries the next ones if it is taken, unless
            ``--ServerApp.port_retries=0`` is in ``extra``).
        token: the login token (fixed, so the printed URL and the tests know it).
        jupyter: the ``jupyter`` executable (default: the one beside this Python).
        extra: more options appended as they are.

    Returns:
        The argument list (no shell involved).
    """
    if jupyter is None:
        beside = Path(sys.executable).with_name("jupyter")
        jupyter = str(beside) if beside.exists() else (shutil.which("jupyter") or "jupyter")
    cmd = [
        jupyter,
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={Path(root).resolve()}",
    ]
    if is_root():
        cmd.append("--allow-root")
    return cmd + list(extra)


def lab_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the server and its kernels: ``base`` without ``MPLBACKEND``."""
    env = dict(os.environ if base is None else base)
    env.pop("MPLBACKEND", None)
    return env


def main(argv: list[str] | None = None) -> int:
    """Print the URL and replace this process with JupyterLab (``make lab``)."""
    from .nbtools import notebooks_dir

    ap = argparse.ArgumentParser(
        prog="python -m alignrec_lite.lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--root", default=str(notebooks_dir()), help="folder to open (default: notebooks/)")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    ap.add_argument(
        "--token",
        default=os.environ.get("LAB_TOKEN") or DEFAULT_TOKEN,
        help="login token (default: $LAB_TOKEN or %(default)s)",
    )
    args = ap.parse_args(argv)
    if not 1 <= args.port <= 65535:
        print(f"alignrec-lite lab: error: --port must be 1-65535, got {args.port}", file=sys.stderr)
        return 2
    if not Path(args.root).is_dir():
        print(f"alignrec-lite lab: error: {args.root} is not a folder. Fix: pass --root notebooks", file=sys.stderr)
        return 2
    cmd = lab_command(args.root, port=args.port, token=args.token)
    print(
        f"JupyterLab on {Path(args.root).resolve()}\n  open {lab_url(args.port, args.token)}\n"
        "  (if the port was taken, JupyterLab prints the one it chose below; Ctrl+C stops it)",
        flush=True,
    )
    os.execvpe(cmd[0], cmd, lab_env())
    return 0  # pragma: no cover - execvpe does not return


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
