"""GraphiQL served from gigql itself: the page, its packaged scripts and styles, and the
script that re-fetches them (vendor.py)."""
