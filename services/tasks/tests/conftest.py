"""Fixtures for the tasks service."""
