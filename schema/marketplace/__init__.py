"""Tasks, offers, milestones, packages, bookings, reviews, discovery and the marketplace's
terms in the graph.
"""
