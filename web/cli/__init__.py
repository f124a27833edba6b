"""The `aioshop` command and its process supervisor: the one corner of web/ that is not HTTP.

`main` parses the command line and runs a subcommand; `supervisor` runs `aioshop up`'s process
tree (web, worker, relay as children); `services` starts the embedded PostgreSQL and Redis. They
import in that order only, and no HTTP module imports this package (`make lint` checks both).
"""
