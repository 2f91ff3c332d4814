"""Accounts in the graph: sign-up, login and sessions, users and profiles, operators' tools."""
