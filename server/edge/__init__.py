"""The HTTP edge of `/graphql`: what the GraphQL-over-HTTP specification asks of a
server besides executing operations (media types and their status codes)."""
