"""Dramatiq actors (all side effects) and the outbox relay. Build a broker with actors.broker."""
