"""Goldstack first-boot agent: metadata -> validated node document -> rendered configs -> cluster steps."""

__version__ = "0.1.0"
