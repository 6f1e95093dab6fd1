"""SQL only: no HTTP, no transactions of their own."""
