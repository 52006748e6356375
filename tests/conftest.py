"""Shared test helpers: the shared mirror, a server for it, and running the real `scrapy crawl`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_SITE = Path(os.environ.get("THEORY_SHARED_SITE", PROJECT_ROOT.parent / "shared" / "site"))
SHARED_CURRENT_SITE = Path(
    os.environ.get("THEORY_SHARED_CURRENT_SITE", PROJECT_ROOT.parent / "shared" / "site-current")
)

# Politeness is for the live host; against 127.0.0.1 it only slows the tests down.
FAST = {
    "AUTOTHROTTLE_ENABLED": "0",
    "DOWNLOAD_DELAY": "0",
    "CONCURRENT_REQUESTS": "16",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "16",
    "RETRY_TIMES": "2",
    "LOG_LEVEL": "INFO",
}


def _shared_mirror(path: Path, variable: str) -> Path:
    """A shared mirror; skipped on a user's clone without it, but never skipped in CI."""
    if not (path / "serve.py").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the shared mirror is missing at {path}")
        pytest.skip(f"the shared mirror is not at {path} (set {variable} to point at it)")
    return path


@pytest.fixture(scope="session")
def shared_site() -> Path:
    """The mirror of the legacy host."""
    return _shared_mirror(SHARED_SITE, "THEORY_SHARED_SITE")


@pytest.fixture(scope="session")
def shared_current_site() -> Path:
    """The mirror of the current CMS's channel."""
    return _shared_mirror(SHARED_CURRENT_SITE, "THEORY_SHARED_CURRENT_SITE")


class MirrorServer:
    """The mirror's own serve.py on 127.0.0.1, started and stopped around a test."""

    def __init__(self, serve_py: Path, root: Path, *options: str):
        self.stats_path = root.parent / f"server-stats-{os.getpid()}-{id(self)}.json"
        self.process = subprocess.Popen(
            [sys.executable, str(serve_py), "--root", str(root), "--port", "0", "--stats-json", str(self.stats_path), *options],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            self.process.kill()
            raise RuntimeError(f"mirror server did not start: {line!r}")
        self.url = line.split()[1].rstrip("/") + "/"

    def stop(self) -> dict:
        """Stop the server and return its request statistics."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        return json.loads(self.stats_path.read_text()) if self.stats_path.exists() else {}


@pytest.fixture
def serve_mirror(shared_site):
    servers: list[MirrorServer] = []

    def start(root: Path | None = None, *options: str) -> MirrorServer:
        server = MirrorServer(shared_site / "serve.py", root or shared_site / "www", *options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def crawl_command(base_url: str, data_dir: Path, *spider_args: str, **settings: str) -> list[str]:
    command = [sys.executable, "-m", "scrapy", "crawl", "theory"]
    # The current site is left out unless a test points THEORY_CHANNEL_URL at a server of its own.
    defaults = {"THEORY_BASE_URL": base_url, "THEORY_CHANNEL_URL": "", "THEORY_DATA_DIR": str(data_dir)}
    for name, value in {**FAST, **defaults, **settings}.items():
        command += ["-s", f"{name}={value}"]
    for argument in spider_args:
        command += ["-a", argument]
    return command


def run_crawl(base_url: str, data_dir: Path, *spider_args: str, timeout: float = 300, **settings: str):
    """Run `scrapy crawl theory` as a user would, from the project directory."""
    return subprocess.run(
        crawl_command(base_url, data_dir, *spider_args, **settings),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def load_expected(site: Path) -> list[dict]:
    return read_jsonl(site / "expected.jsonl")


@pytest.fixture
def www(shared_site, tmp_path) -> Path:
    """A private copy of the legacy mirror's site root, free to change."""
    return Path(shutil.copytree(shared_site / "www", tmp_path / "www"))


@pytest.fixture
def expected(shared_site) -> list[dict]:
    """The legacy mirror's ground truth."""
    return load_expected(shared_site)


def latest_run_report(data_dir: Path) -> dict:
    reports = sorted((data_dir / "runs").glob("*.json"))
    return json.loads(reports[-1].read_text("utf-8"))
