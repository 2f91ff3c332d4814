"""What every area's use cases share: the services they run with, the unit of work, the one
transition function and its guards, lookups, pagination and cursors, input checks.
"""
