"""Chat in the graph: conversations, messages and their live events."""
