"""Browser plumbing for tests/test_browser.py: Debian's chromium driven by Playwright, and a JupyterLab server.

Playwright's own browser download cannot run here (no network), so the browser is the
system's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) or the one
``$CHROMIUM`` names, launched by path with the flags that keep it off the network.
JupyterLab is started with :func:`alignrec_lite.lab.lab_command`, the command ``make lab``
runs, on a copy of the notebooks in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
HOW_TO_GET = (
    "no chromium found: install Debian's package (apt-get install chromium) or set CHROMIUM to a "
    "Chromium/Chrome executable; pip install -e '.[test]' brings Playwright"
)


def find_chromium() -> str | None:
    """The browser executable: ``$CHROMIUM``, else ``chromium`` / ``chromium-browser`` on the PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageLog:
    """What went wrong in a page: console errors, failed or off-machine requests, page errors."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"failed request: {u}" for u in self.failed_requests]
            + [f"page error: {e}" for e in self.page_errors]
        )


def watch(page: Any, *, local_only: bool = True) -> PageLog:
    """Record a page's console errors and failed requests; abort (and record) any request off this machine."""
    log = PageLog()
    page.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))
    page.on("requestfailed", lambda r: log.failed_requests.append(f"{r.url} ({r.failure})"))

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:", "http://127.0.0.1", "ws://127.0.0.1")) or not local_only:
            r.continue_()
        else:
            log.failed_requests.append(f"{url} (off this machine: blocked)")
            r.abort()

    page.route("**/*", route)
    return log


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """JupyterLab on ``root``, started as ``make lab`` starts it, stopped on exit.

    Its (and its kernels') environment: the test's, without ``MPLBACKEND``, with ``extra_env``,
    and Jupyter's config/runtime/workspace folders inside ``state`` so a user's settings
    cannot change what is tested.
    """

    def __init__(
        self, root: Path, state: Path, extra_env: dict[str, str] | None = None, token: str = "browser-test"
    ) -> None:
        from alignrec_lite.lab import lab_command, lab_env

        self.root, self.token, self.port = root, token, free_port()
        env = lab_env()
        env.update(
            {
                "JUPYTER_CONFIG_DIR": str(state / "config"),
                "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
                "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
            },
            **(extra_env or {}),
        )
        self.log_path = state / "lab.log"
        state.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            lab_command(root, port=self.port, token=token, extra=["--ServerApp.port_retries=0"]),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/{path}?token={self.token}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {self.log_path.read_text()[-2000:]}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer in {timeout:.0f} s: {self.log_path.read_text()[-2000:]}")

    def shutdown_kernels(self) -> None:
        """Stop every session's kernel (each test leaves the machine as it found it)."""
        for s in self.api("sessions"):
            req = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/api/sessions/{s['id']}?token={self.token}", method="DELETE"
            )
            urllib.request.urlopen(req, timeout=30).close()

    def url(self, notebook: str) -> str:
        """The notebook in a workspace of its own, so no tab of an earlier test is restored beside it."""
        workspace = "ws-" + "".join(c if c.isalnum() else "-" for c in notebook)
        return f"http://127.0.0.1:{self.port}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"

    def wait_kernel_idle(self, notebook: str, timeout: float = 120) -> None:
        """Until the notebook's session has a kernel that reports ``idle``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self.api("sessions"):
                if s.get("path", "").endswith(notebook) and (s.get("kernel") or {}).get("execution_state") == "idle":
                    return
            time.sleep(0.5)
        raise TimeoutError(f"no idle kernel for {notebook} after {timeout:.0f} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def run_all_in_lab(page: Any, lab: LabServer, notebook: str, timeout: float = 300) -> float:
    """Open ``notebook``, choose Run > Run All Cells in the menu, wait until every cell ran; returns seconds."""
    page.goto(lab.url(notebook))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    deadline = time.monotonic() + 120
    while True:
        # on a slow start JupyterLab may ask which kernel to use: take its proposal (python3), as a user would
        dialog = page.locator(".jp-Dialog button.jp-mod-accept")
        if dialog.count():
            dialog.first.click()
        try:
            lab.wait_kernel_idle(notebook, timeout=2)
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
    page.wait_for_timeout(500)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    t0 = time.monotonic()
    page.wait_for_timeout(1500)
    while time.monotonic() - t0 < timeout:
        busy = page.locator(".jp-InputPrompt", has_text="[*]").count()
        status = page.get_attribute(".jp-Notebook-ExecutionIndicator", "data-status")
        if busy == 0 and status == "idle":
            sessions = [s for s in lab.api("sessions") if s.get("path", "").endswith(notebook)]
            if sessions and sessions[0]["kernel"]["execution_state"] == "idle":
                return time.monotonic() - t0
        page.wait_for_timeout(500)
    raise TimeoutError(f"{notebook} still running after {timeout:.0f} s")
