"""MongoDB command round trips for `/metrics`, from PyMongo's command monitoring.

PyMongo times each command itself (`duration_micros`) and calls the listener on the
task that sent it, so this only files the time under the command's name: a name from the
fixed list below, else `other` (commands are the driver's, but a listener should not
trust that for a label).
"""

from __future__ import annotations

from prometheus_client.metrics import Histogram
from pymongo import monitoring

from documents.metrics import MONGODB_COMMAND_DURATION

COMMANDS = frozenset(
    {
        "aggregate", "abortTransaction", "commitTransaction", "count", "create",
        "createIndexes", "delete", "distinct", "drop", "endSessions", "find",
        "findAndModify", "getMore", "hello", "insert", "isMaster", "killCursors",
        "listCollections", "listIndexes", "ping", "update",
    }
)  # fmt: skip


class CommandDurations(monitoring.CommandListener):
    def __init__(self) -> None:
        self._bound: dict[tuple[str, str], Histogram] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        return None

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._observe(event.command_name, "ok", event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._observe(event.command_name, "failed", event.duration_micros)

    def _observe(self, command: str, outcome: str, micros: int) -> None:
        name = command if command in COMMANDS else "other"
        histogram = self._bound.get((name, outcome))
        if histogram is None:
            histogram = self._bound[name, outcome] = MONGODB_COMMAND_DURATION.labels(name, outcome)
        histogram.observe(micros / 1_000_000)
