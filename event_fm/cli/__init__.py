"""The ``event-fm`` command line."""
