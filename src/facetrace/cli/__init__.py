"""The ``facetrace`` command (:mod:`facetrace.cli.main`), split by command group."""
