"""Payments through a gateway: Stripe (Connect, Identity), or an in-process sandbox that
walks the same states and emits the same events when no Stripe key is configured.

`gateway.py` is the interface and its results, `errors.py` the failures callers handle,
`webhooks.py` Stripe's webhook signatures, `factory.py` picks the gateway for the settings.
"""
