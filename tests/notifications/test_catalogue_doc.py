"""docs/webhook-events.md shows one real payload per event type, made from the
recorded histories; it must be what the current code writes."""

from __future__ import annotations

from tests.notifications.catalogue_doc import DOC, render


def test_the_event_catalogue_doc_is_current():
    assert DOC.read_text() == render(), "run: python -m tests.notifications.catalogue_doc"
