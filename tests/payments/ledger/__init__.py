"""Tests of the ledger, its verification and reconciliation."""
