"""Tests of accounts, sign-up, login, sessions, passwords and profiles."""
