"""Tokens, passwords and permissions."""
