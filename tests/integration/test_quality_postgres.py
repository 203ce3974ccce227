"""The quality store on a real PostgreSQL (DRIFTWATCH_QUALITY_DATABASE_URL): the same checks as on
the embedded SQLite default, plus a batch of labels and a restart of the database server."""

from __future__ import annotations

import pytest

from driftwatch.postgres import start_postgres
from quality.store import Label, Prediction, QualityStore
from tests.unit.quality.test_quality_store import (
    first_label_wins_and_unknown_ids_wait_for_their_prediction,
    the_store_survives_a_restart_and_applies_the_retention,
    the_window_reaches_past_many_unlabeled_newer_predictions,
    two_ids_sharing_a_key_never_label_each_others_prediction,
)

pytestmark = pytest.mark.integration


def test_the_quality_store_works_on_postgresql() -> None:
    with start_postgres() as pg:
        first_label_wins_and_unknown_ids_wait_for_their_prediction(pg.create_database("first"))
        the_store_survives_a_restart_and_applies_the_retention(pg.create_database("restart"))
        two_ids_sharing_a_key_never_label_each_others_prediction(pg.create_database("shared_key"))
        the_window_reaches_past_many_unlabeled_newer_predictions(pg.create_database("window"))
        url = pg.create_database("batch")
        store = QualityStore(url)
        ids = [f"{i:032x}" for i in range(5000)]
        store.add_predictions([Prediction(pid, "m", "2", 1000.0 + i, str(i % 3), f"c{i % 3}", None, 0.8)
                               for i, pid in enumerate(ids)])
        labels = [Label(pid, str(i % 3), float(i % 3), 2000.0) for i, pid in enumerate(ids[:4000])]
        labels.append(Label("f" * 32, "1", 1.0, 2000.0))
        outcome = store.add_labels(labels, received_at=2001.0)
        assert (len(outcome.joined), outcome.pending, outcome.duplicate) == (4000, ["f" * 32], [])
        # the server restarts; the service's pool reconnects and nothing is lost
        pg.stop()
        pg.start()
        again = store.add_labels(labels[:10], received_at=2002.0)
        assert len(again.duplicate) == 10
        rows = store.newest_labeled("m", "2", 100)
        assert len(rows) == 100 and rows[0].predicted_at == 1000.0 + 3999
        assert store.version_counts("m", since=0.0, limit=5)[0].labeled == 4000
        store.close()
