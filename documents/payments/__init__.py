"""Money: escrows, disputes, the double-entry ledger and its accounts, withdrawals and the
gateway's webhook events.
"""
