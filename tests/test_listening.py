"""Nothing listens: a crawl opens no listening socket and announces no console (telnet, remote control)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crawl_helpers import ARTICLES, SLOW_CRAWL, SLOW_SERVER, log_of, start_crawl, wait_for_lines

TCP_LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket


def listening_sockets(pid: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp shows them) on which the process ``pid`` listens."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed between listing and reading
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            columns = row.split()
            if columns[3] == TCP_LISTEN and columns[9] in inodes:
                found.append(columns[1])
    return found


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_a_crawl_listens_on_nothing_and_says_so(serve_mirror, tmp_path):
    data_dir = tmp_path / "data"
    server = serve_mirror(None, *SLOW_SERVER)
    process = start_crawl(server.url, data_dir, "sections=253", **SLOW_CRAWL)
    try:
        # Both consoles start with the engine, before the first article is written, and stay up to its end.
        wait_for_lines(process, data_dir / ARTICLES, 5)
        assert listening_sockets(process.pid) == []
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    log = log_of(process)
    assert process.returncode == 0, log[-3000:]
    assert "Telnet" not in log and "Remote control" not in log, [
        line for line in log.splitlines() if "Telnet" in line or "Remote control" in line
    ]
