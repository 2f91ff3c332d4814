"""Money: fees, the ledger and its checks, wallets and withdrawals, payout accounts and
identity; escrow, disputes, gateway webhooks and reconciliation in their own packages.
"""
