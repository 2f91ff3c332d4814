"""Tests of packages, availability and bookings."""
