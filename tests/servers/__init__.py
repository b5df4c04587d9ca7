"""Real servers for the tests, each on 127.0.0.1 with a free port and a temp directory.

Every helper here binds to loopback only and stops what it starts. Readiness is a poll
with a deadline (connect or query until it answers), never a fixed sleep.
"""
