"""Counting the commands a request sends to the database, with PyMongo's command monitoring.

Listeners are called inline by the task that sends the command, so the request id of
the request being served (a context variable) tells its commands from those of any
other work in the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymongo import monitoring

from resolvers.common.request_ids import request_id_var

# Not round trips of the application: connection handshakes and health checks.
IGNORED = frozenset({"hello", "ismaster", "isMaster", "ping", "endSessions", "saslStart"})


class CommandLog(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] | None = None
        self.documents: list[dict[str, Any]] = []
        self.request_id: str | None = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if (
            self.commands is not None
            and event.command_name not in IGNORED
            and request_id_var.get() == self.request_id
        ):
            collection = event.command.get(event.command_name)
            self.commands.append((event.command_name, str(collection)))
            self.documents.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    @contextmanager
    def recording(self, request_id: str) -> Iterator[list[tuple[str, str]]]:
        """The (command, collection) pairs sent for the request with this id."""
        self.commands, self.documents, self.request_id = [], [], request_id
        try:
            yield self.commands
        finally:
            self.commands, self.request_id = None, None


# Registered before any client exists, so that the session's client reports to it.
COMMAND_LOG = CommandLog()
monitoring.register(COMMAND_LOG)
