"""Tests of escrows, disputes and the money's conservation."""
