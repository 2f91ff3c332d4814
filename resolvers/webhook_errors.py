"""What a webhook handler raises to be retried later, or to have its event rejected, in a
module of its own so that the handler modules can import it while `webhook_handlers`
imports them."""

from __future__ import annotations

from collections.abc import Sequence

from documents.webhooks import EventDifference


class NotReady(Exception):
    """The event depends on something not recorded yet; process it again later."""


class EventMismatch(Exception):
    """The event's object contradicts what we recorded: nothing is changed, the event is
    stored as rejected with the differences and an alert is logged. Never retried: a
    signed event is still not believed on its metadata alone."""

    def __init__(self, differences: Sequence[EventDifference]) -> None:
        super().__init__("; ".join(str(difference) for difference in differences))
        self.differences = list(differences)
