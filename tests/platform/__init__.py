"""Tests of the server as a program: its command line, settings, start-up, deployment and
repository rules.
"""
