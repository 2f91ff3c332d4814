"""The marketplace: tasks and offers, milestones, service packages, availability and
bookings, reviews, finding providers, and the terms a client sees before a deal.
"""
