"""training assets (filled in by their issue)."""
