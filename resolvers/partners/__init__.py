"""Partners' use cases: keys, wallets, money, webhooks to partners."""
