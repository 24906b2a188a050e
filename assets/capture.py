"""capture assets (filled in by their issue)."""
