"""People's accounts: sign-up, login and sessions (auth), their own account and profiles,
closing an account, operators' actions on accounts and the audit log.
"""
