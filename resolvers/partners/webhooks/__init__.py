"""Webhooks to partners: endpoints, the outbox, the sender, deliveries."""
