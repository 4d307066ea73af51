"""The weekly digest builder: gather, summarize, compose, render and send a publication's weekly issue."""

__version__ = "0.1.0"
