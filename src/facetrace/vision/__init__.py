"""Vision stages: detect, align, quality, embed. Importing this package loads no model."""
