"""Vector indexes behind one protocol (:class:`facetrace.index.base.VectorIndex`)."""
