"""Ready-made payment scenes for the tests: escrows paid, wallets, webhooks, reconciliation."""
