"""Grouping faces into people: a k-nearest-neighbour graph built with the vector index,
clustered by interchangeable algorithms, under the decisions people made.

Pure computation below the gallery and the service: :mod:`.graph` (the neighbour
graph and its calibrated edge threshold), :mod:`.cluster` (the algorithms),
:mod:`.constraints` (must-link / cannot-link), :mod:`.incremental` (new faces joining
existing groups), :mod:`.metrics` (pairwise and BCubed scores), :mod:`.folder` and
:mod:`.sheet` (``facetrace group FOLDER`` and its contact sheets).
"""
