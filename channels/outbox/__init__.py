"""The outbox: each send as a JSON file, written by a process of its own."""
