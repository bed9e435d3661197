"""Text generation: learn to write like a text."""
