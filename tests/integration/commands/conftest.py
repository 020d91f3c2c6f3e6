"""Fixtures of the command tests: both sandboxes served by `cosell sandbox up` in a subprocess.

One server for the whole package keeps the tests fast (a start costs about a second); each
test puts the state it needs in place through the sandboxes' control API (the webhook
registration is deleted before every test that cares).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from commands_kit import Served


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`cosell sandbox up --json --pc-port 0 --sf-port 0 --write-config FILE`, for all tests."""
    directory = tmp_path_factory.mktemp("served")
    config = directory / "cosell.toml"
    command = [sys.executable, "-m", "cosell.cli", "sandbox", "up", "--json", "--seed", "9"]
    command += ["--pc-port", "0", "--sf-port", "0", "--write-config", str(config)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=directory
    ) as proc:
        try:
            assert proc.stdout is not None
            yield Served(json.loads(proc.stdout.readline()), config)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)


class _Answer200(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="session")
def receiver() -> Iterator[str]:
    """A loopback URL that answers every POST with 200 (a webhook endpoint that works)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer200)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/partner-center"
    finally:
        server.shutdown()
        server.server_close()
