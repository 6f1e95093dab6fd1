"""The taskgate auth service."""
