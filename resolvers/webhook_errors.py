"""What a webhook handler raises to be retried later, in a module of its own so that
the handler modules can import it while `webhook_handlers` imports them."""

from __future__ import annotations


class NotReady(Exception):
    """The event depends on something not recorded yet; process it again later."""
