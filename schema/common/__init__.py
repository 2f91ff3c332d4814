"""What every area's GraphQL types share: value types and scalars, Relay ids and
connections, the mutation payload convention, permissions, loaders, the request context,
limits and live subscriptions.
"""
