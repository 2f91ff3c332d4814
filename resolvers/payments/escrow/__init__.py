"""Escrows: opened with each deal, paid, released to the provider or refunded to the payer,
as each deal's moves and the gateway's events ask.
"""
