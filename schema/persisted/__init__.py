"""Documents named instead of sent: automatic persisted queries (Apollo's protocol) and
the trusted documents of a front end's build (GraphQL-over-HTTP's `documentId`)."""
