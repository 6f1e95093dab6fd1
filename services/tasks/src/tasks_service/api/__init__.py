"""The HTTP layer: dependencies and thin routes."""

PREFIX = "/api"  # every route of the service is under it (the gateway routes `/api` here)
