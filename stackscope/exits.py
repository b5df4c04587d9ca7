"""How a stackscope run ends: its exit codes, and the signals that end it like a quit.

Exit codes follow the monitoring-plugins convention (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN, also for a layout that cannot be used), so Nagios, CI gates and shell scripts
read them alike. They live apart from the CLI so that the demo and the dashboard can
return them without importing the command-line module.
"""

from __future__ import annotations

import signal

EXIT_OK, EXIT_WARN, EXIT_CRIT, EXIT_UNKNOWN = 0, 1, 2, 3

# SIGTERM (a service manager, `kill`) and SIGHUP (the SSH session dropped): both end a
# run as `q` does, so a --record timeline is still written and the terminal restored.
TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
