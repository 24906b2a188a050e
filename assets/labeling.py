"""labeling assets (filled in by their issue)."""
