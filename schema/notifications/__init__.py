"""Notifications in the graph."""
