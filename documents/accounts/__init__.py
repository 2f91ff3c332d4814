"""People: accounts, profiles, sessions, mailed tokens, guessing counters and the audit log."""
