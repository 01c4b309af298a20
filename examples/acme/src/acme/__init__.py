"""acme: a small command-line app with a login and a background sync daemon."""

__version__ = "1.4.0"
