"""Chat between the two sides of a task or booking."""
