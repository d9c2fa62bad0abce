"""facetrace: self-hosted face search for identifying the dead and tracing the missing.

The public API is re-exported lazily by submodules; importing this package loads no model.
"""

__version__ = "0.1.0"
