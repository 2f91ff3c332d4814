"""How the schema executes: resolvers set up at build time for speed, held to
Strawberry's answers."""
