"""The embedded training stack: a real request path to break on purpose.

Everything runs in one process on 127.0.0.1 with free ports, on an asyncio loop in its own
thread: a DNS server, a load balancer that exposes its pool as HAProxy-format stats, three
auth backends and a decoy pool, a Redis-speaking session store and a synthetic client.
stackscope probes it with exactly the checks and diagnosis it uses on real stacks.
"""
