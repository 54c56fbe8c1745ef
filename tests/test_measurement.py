"""The measurement record (issue #27): what a figure is of (series) and what it was measured with (fingerprints),
defined once (results.measurement); official splits by their ids."""

from __future__ import annotations

import pytest

from tests.helpers import official_ids
from w2v2bench.results import OFFICIAL_SPLITS, ids_sha256


@pytest.mark.parametrize("split", sorted(OFFICIAL_SPLITS))
def test_the_official_split_hashes_are_those_of_the_openslr_lists(split):
    count, digest = OFFICIAL_SPLITS[split]
    ids = official_ids(split)
    assert len(ids) == len(set(ids)) == count and ids_sha256(ids) == digest
    assert ids_sha256(reversed(ids)) == digest  # the order of a run's rows does not matter
    assert ids_sha256(ids[1:]) != digest
