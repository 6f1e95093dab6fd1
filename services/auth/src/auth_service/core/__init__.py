"""Settings, password hashing, signing keys and access tokens."""
