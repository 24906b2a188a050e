"""dataset assets (filled in by their issue)."""
