"""Settings and the framework-free pieces: token verification, positions, cursors."""
