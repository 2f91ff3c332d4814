"""Tasks, offers, service packages, bookings and reviews."""
