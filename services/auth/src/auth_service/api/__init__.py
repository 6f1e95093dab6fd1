"""HTTP layer: dependencies and routes."""

PREFIX = "/auth"  # every route of the service is under it (the gateway routes `/auth` here)
