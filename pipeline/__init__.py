"""Sapat: survey and satisfaction analytics for a university quality office."""

__version__ = "0.1.0"
