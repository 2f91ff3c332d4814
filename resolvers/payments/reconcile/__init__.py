"""`gigql reconcile`: our records of a period against the gateway's and against the ledger."""
