"""Runs taskgate's real parts without Docker."""
