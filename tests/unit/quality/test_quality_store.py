from pathlib import Path

from quality.store import Label, Prediction, QualityStore


def _prediction(pid: str, version: str = "1", at: float = 100.0, predicted: str = "0") -> Prediction:
    return Prediction(pid, "m", version, at, predicted, "setosa" if predicted == "0" else "other", None, 0.9)


def first_label_wins_and_unknown_ids_wait_for_their_prediction(url: str) -> None:
    store = QualityStore(url)
    store.add_predictions([_prediction("a"), _prediction("b")])
    outcome = store.add_labels([Label("a", "0", 0.0, 150.0), Label("z", "1", 1.0, 151.0)], received_at=160.0)
    assert (outcome.joined, outcome.pending, outcome.duplicate) == (["a"], ["z"], [])
    again = store.add_labels([Label("a", "1", 1.0, 170.0), Label("z", "2", 2.0, 171.0)], received_at=180.0)
    assert again.duplicate == ["a", "z"] and not again.joined and not again.pending
    assert store.pending_count() == 1
    assert store.add_predictions([_prediction("z", at=120.0)]) == 1  # the waiting label is joined
    assert store.pending_count() == 0
    rows = store.newest_labeled("m", "1", 10)
    assert [(r.actual, r.labeled_at) for r in rows] == [("1", 151.0), ("0", 150.0)]  # z is newer
    counts = store.version_counts("m", since=0.0, limit=5)
    assert [(c.model_version, c.predictions, c.labeled) for c in counts] == [("1", 3, 2)]


def the_store_survives_a_restart_and_applies_the_retention(url: str) -> None:
    store = QualityStore(url)
    store.add_predictions([_prediction("old", at=10.0), _prediction("new", at=1000.0)])
    store.add_labels([Label("new", "0", 0.0, 1001.0), Label("never", "0", 0.0, 5.0)], received_at=20.0)
    store.save_log_offsets({"1:2": 345}, 30.0)
    store.close()
    reopened = QualityStore(url)
    assert reopened.log_offsets() == {"1:2": 345}
    assert reopened.version_counts("m", since=0.0, limit=5)[0].labeled == 1
    deleted, expired = reopened.prune(older_than=500.0)
    assert (deleted, expired) == (1, 1)
    assert reopened.version_counts("m", since=0.0, limit=5)[0].predictions == 1
    reopened.close()


# The same checks run on PostgreSQL in tests/integration/test_quality_postgres.py.
def test_first_label_wins_and_unknown_ids_wait_for_their_prediction(tmp_path: Path) -> None:
    first_label_wins_and_unknown_ids_wait_for_their_prediction(f"sqlite:///{tmp_path / 'q.db'}")


def test_the_store_survives_a_restart_and_applies_the_retention(tmp_path: Path) -> None:
    the_store_survives_a_restart_and_applies_the_retention(f"sqlite:///{tmp_path / 'sub' / 'q.db'}")
