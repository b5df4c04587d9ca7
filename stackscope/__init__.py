"""stackscope: probe every layer of a request path and name the broken one."""

__version__ = "0.1.0"
