"""Code both taskgate services share."""
