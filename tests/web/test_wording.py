"""The words on the pages: rates as precise as their evidence, audit details, quality
reasons (the doctests of the helpers, plus the edges)."""

from __future__ import annotations

import doctest

import pytest

import facetrace.types
import facetrace.web.render
import facetrace.web.wording
from facetrace.web.render import fmt_rate


@pytest.mark.parametrize("module", [facetrace.web.render, facetrace.web.wording, facetrace.types])
def test_doctests(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_rates_never_claim_more_than_was_measured() -> None:
    pairs = {"impostor_pairs": 18_941_205}
    assert fmt_rate(1 / 39_851_992, pairs) == "fewer than 1 in 19 million pairs measured"
    assert fmt_rate(1 / 18_000_000, pairs) == "about 1 in 20,000,000"  # 1.05 pairs: 1 digit
    assert fmt_rate(0.0123, pairs) == "about 1 in 81"
    assert fmt_rate(None, pairs).startswith("not estimated")
    assert fmt_rate(1e-9, {}) == "about 1 in 1,000,000,000"  # no evidence recorded


def test_audit_details_leave_out_empty_texts() -> None:
    """An import that ended well has no error: the audit page says nothing about one
    (it showed "error: ;")."""
    from facetrace.web.wording import action_text, detail_text

    text = detail_text('{"job": "j1", "state": "done", "error": "", "photos_added": 8}')
    assert "error" not in text and text == "job: j1; state: done; photos added: 8"
    assert "error: disk full" in detail_text('{"state": "failed", "error": "disk full"}')
    assert action_text("view_photo") == "Viewed a reference photo"
    assert action_text("refused") == "Refused attempt"
