"""Use cases: each owns its transaction."""
