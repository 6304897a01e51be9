"""A real S3 endpoint for tests: moto's server mode in a separate process.

A separate process (not moto's in-process mocking) means the code under test goes through real
HTTP, real sockets and real failures — stopping the process is an endpoint that is down.

Other test modules get a module-scoped server with::

    from tests.s3_server import MotoS3Server, moto_s3_server

    @pytest.fixture(scope="module")
    def s3_server() -> Iterator[MotoS3Server]:
        yield from moto_s3_server()
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoS3Server:
    """``python -m moto.server`` on 127.0.0.1; ``endpoint`` is its URL once started."""

    def __init__(self, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        # The server logs every request; a file (not a pipe nobody drains) can never fill up
        # and stall it, and is there to read if it fails to start.
        self._log = tempfile.TemporaryFile()

    def start(self) -> MotoS3Server:
        """Spawn the server and return once it answers HTTP (raises if it never does)."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = self._output()
                self.stop()
                raise RuntimeError(f"moto server exited early:\n{output}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto server did not answer within {self.startup_timeout}s")

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/moto-api/")
            connection.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            connection.close()

    def _output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        """Terminate the server (kill it if it ignores that) and wait for it to exit."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log.close()

    def client(self) -> Any:
        """A plain boto3 S3 client for inspecting the server from tests (blocking)."""
        return s3_client(self.endpoint)


def s3_client(endpoint: str) -> Any:
    """A blocking boto3 S3 client for ``endpoint`` with the test credentials."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}),
    )


def moto_s3_server() -> Iterator[MotoS3Server]:
    """Generator behind a (module-scoped) fixture: a started server, stopped afterwards."""
    server = MotoS3Server().start()
    try:
        yield server
    finally:
        server.stop()
