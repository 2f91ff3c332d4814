"""The partner API over HTTP."""
