"""Tests of payout accounts, wallets and withdrawals, and the sandbox's whole loop."""
