"""Tests of websockets, live events and the broker between instances."""
