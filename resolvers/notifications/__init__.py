"""The in-app notifications people read."""
