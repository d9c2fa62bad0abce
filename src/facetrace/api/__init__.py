"""The REST API under ``/api/v1``: one router per resource (:mod:`.routes`), assembled in
:mod:`.router`; the app that serves it is built by :mod:`facetrace.server.app`."""
