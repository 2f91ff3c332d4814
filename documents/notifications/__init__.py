"""Notifications beyond the app: what kinds there are, people's choices, the deliveries
waiting in the outbox and the messages scheduled for later."""
