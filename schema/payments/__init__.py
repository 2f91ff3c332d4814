"""Money in the graph: escrows, disputes, wallets and withdrawals, payout accounts,
operators' payment tools.
"""
