"""`stackscope init`: what a stack's own configs, live LBs and listening sockets say about
its request path, turned into a layout. Nothing here probes beyond the read-only requests
the checks already make; every value read is made terminal-safe where it enters."""
