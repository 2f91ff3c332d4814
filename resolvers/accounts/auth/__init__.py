"""Identity: sign-up, login and sessions, e-mail verification, password recovery."""
