"""Tests of the payment gateways themselves: Stripe through localstripe and the stub, and
the sandbox.
"""
