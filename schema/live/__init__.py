"""Subscriptions delivered as pre-framed text, beside Strawberry's per-operation streams."""
