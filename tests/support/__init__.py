"""What the tests share: clients for GraphQL over HTTP and websockets, outside processes,
and ready-made marketplace scenes.
"""
