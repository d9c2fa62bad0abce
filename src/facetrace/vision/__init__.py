"""The vision stages: detect, align, quality, embed. No HTTP, no SQL."""
