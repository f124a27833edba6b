"""The server-rendered storefront."""
