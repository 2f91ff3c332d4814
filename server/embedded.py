"""SecantusDB as a child process, for running with nothing configured.

SecantusDB is GPL-licensed, so it is an optional extra and is only ever run as a
separate process and spoken to over the MongoDB wire protocol, never imported.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from server.private_files import open_private, private_folder

MODULE = "secantus"
IN_MEMORY = ":memory:"
_PR_SET_PDEATHSIG = 1


class EmbeddedDatabaseError(Exception):
    """The embedded database could not be started; the message says why in one line."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: die when the parent dies without stopping it (SIGKILL, a crash).

    SIGKILL rather than SIGTERM: SecantusDB's SIGTERM shutdown was seen to hang now and
    then, and an orphan keeps the data folder locked against the next `gigql serve`.
    Nothing is lost that SIGTERM would save: commits are synced (--sync-on-commit) and
    WiredTiger recovers from its journal, and the parent's own stop still uses SIGTERM.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class EmbeddedMongo:
    def __init__(self, storage: Path | str, log_path: Path, host: str = "127.0.0.1") -> None:
        """`storage` is a folder kept across restarts, or IN_MEMORY for a throwaway database."""
        self.storage = storage
        self.log_path = log_path
        self.host = host
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        # Retryable writes slow SecantusDB down badly and buy nothing on one node.
        return f"mongodb://{self.host}:{self.port}/?retryWrites=false&directConnection=true"

    def start(self, timeout: float = 30.0) -> str:
        if importlib.util.find_spec(MODULE) is None:
            raise EmbeddedDatabaseError(
                "the embedded database is not installed: pip install 'gigql[embedded]', "
                "or set MONGODB_URL to use your own MongoDB"
            )
        if self.storage != IN_MEMORY:
            private_folder(Path(self.storage))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        command = [
            sys.executable,
            "-m",
            MODULE,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage),
            # Without it, acknowledged transactions can be lost if the machine crashes.
            "--sync-on-commit",
            "--log-level",
            "WARNING",
        ]
        with open(open_private(self.log_path, os.O_WRONLY | os.O_APPEND), "ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: Ctrl-C reaches only us, and we stop it after the API.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._wait_until_ready(timeout)
        return self.url

    def _wait_until_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        client: MongoClient[dict[str, object]]
        with MongoClient(self.url, serverSelectionTimeoutMS=250) as client:
            while True:
                if self._process.poll() is not None:
                    raise EmbeddedDatabaseError(self._failure_reason())
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise EmbeddedDatabaseError(
                            f"the embedded database did not answer within {timeout:.0f}s "
                            f"(see {self.log_path})"
                        ) from None
                    time.sleep(0.05)

    def _failure_reason(self) -> str:
        tail = self.log_path.read_text(errors="replace")[-4000:]
        if "already being managed by another process" in tail:
            return (
                f"the data folder {self.storage} is in use by another gigql or SecantusDB process"
            )
        return f"the embedded database exited at start-up (see {self.log_path})"

    def stop(self, timeout: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> EmbeddedMongo:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
