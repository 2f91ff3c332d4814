"""HTTP side routes of notifications beyond the app: the one-click unsubscribe page."""
