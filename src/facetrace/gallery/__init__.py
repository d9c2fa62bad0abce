"""The data directory: the SQL store and the vector index kept consistent
(:mod:`~facetrace.gallery.directory`), and the ingest that fills it
(:mod:`~facetrace.gallery.ingest`, :mod:`~facetrace.gallery.ingest_ray`).

Kept free of imports so that an ingest worker process loads only what it uses."""
