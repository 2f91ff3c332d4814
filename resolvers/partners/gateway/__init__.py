"""Partner money through the payment gateway: card credits, withdrawals, their events."""
