"""The partner API: the part of the graph partners' apps reach with an API key
(schema/partners/schema.py), and what partners' owners and admins see in the main one."""
