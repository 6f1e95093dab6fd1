"""Route modules, one per URL family."""
