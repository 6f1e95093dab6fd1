"""The taskgate tasks service."""
