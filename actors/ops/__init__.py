"""What operators see of the side-effect machinery, on both brokers.

Written by workers and relays, read by the /ops pages and /metrics: heartbeats of every worker
process and relay, per-actor statistics, the short history the overview draws its charts from,
queue depths, and browsing and handling the messages in a queue.
"""
