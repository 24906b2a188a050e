"""evaluation assets (filled in by their issue)."""
