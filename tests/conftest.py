"""Shared fixtures. Real face photos come from ``$FACETRACE_FACES``, never from the repo."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.milvus_server import CollectionPool

# the small real gallery shared by the gallery and CLI tests
pytest_plugins = ["tests.galleries"]

_REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _shared_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The machine-wide model cache (facetrace.vision.shared_models) of this test run:
    a folder of its own, so tests neither read nor fill the user's cache; processes the
    tests start inherit it."""
    from facetrace.vision.shared_models import ENV

    before = os.environ.get(ENV)
    os.environ[ENV] = str(tmp_path_factory.mktemp("shared-models"))
    yield
    if before is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = before


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The shared faces folder (see its README.md): ``$FACETRACE_FACES``, else
    ``../shared/faces`` next to the repository. Skips when missing, except under CI."""
    configured = os.environ.get("FACETRACE_FACES")
    path = Path(configured) if configured else _REPO_ROOT.parent / "shared" / "faces"
    if not path.is_dir():
        reason = f"face photos not found at {path} (set FACETRACE_FACES)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def milvus_uri() -> Iterator[str]:
    """The URI of a real Milvus standalone server, started once per test session.

    ``$FACETRACE_TEST_MILVUS`` when set (nothing is started), else the server of the
    PyPI package ``milvus`` on free loopback ports in a temporary data directory,
    stopped at the end of the session, also when tests fail. Skips when the package is
    missing, except under CI. Tests share the server: each uses its own collection.
    """
    from tests.milvus_server import ENV, TEST_SERVER_CONFIG, milvus_server

    if not os.environ.get(ENV) and importlib.util.find_spec("milvus") is None:
        reason = "the Milvus server package is not installed (pip install 'facetrace[milvus]')"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with milvus_server(extra_config=TEST_SERVER_CONFIG) as running:
        yield running.uri


@pytest.fixture(scope="session")
def milvus_pool(milvus_uri: str) -> Iterator[CollectionPool]:
    """Reusable empty collections on the session's server (see :class:`CollectionPool`)."""
    from tests.milvus_server import CollectionPool

    pool = CollectionPool(milvus_uri, prefix=f"pool_{uuid.uuid4().hex[:6]}_")
    yield pool
    pool.drop_all()
