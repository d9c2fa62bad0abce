"""The composition root of the web service: :mod:`~facetrace.server.app` builds the app
from every layer. The HTTP plumbing that the REST API (:mod:`facetrace.api`) and the
pages (:mod:`facetrace.web`) share lives beside it and imports neither of them:
:mod:`~facetrace.server.state`, :mod:`~facetrace.server.deps`,
:mod:`~facetrace.server.problems` and :mod:`~facetrace.server.ratelimit`."""
