"""Partners: other businesses whose apps keep wallets for their own users on gigql's ledger."""
