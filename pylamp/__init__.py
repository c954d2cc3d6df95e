"""pylamp: the load-balanced LAMP cluster as standalone Python servers."""

__version__ = "0.1.0"
