"""Load balancer knowledge: pools, how HAProxy and nginx describe them, and drift.

Everything here is parsing and judging (no sockets): the probes in stackscope/probes/
fetch the bytes, `lint --lb-config` reads files, and both hand the result to this package.
"""
