"""The gateway's webhooks: received, stored once, checked against our records, handled."""
