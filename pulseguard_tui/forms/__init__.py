"""Console forms."""
