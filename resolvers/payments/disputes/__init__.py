"""Disputes between a deal's two sides, chargebacks from the payer's bank, and what an
admin's decision does to the money.
"""
