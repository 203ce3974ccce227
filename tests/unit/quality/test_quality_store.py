from pathlib import Path

from quality.store import _MIX, Label, Prediction, QualityStore, prediction_key, prediction_keys


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


def test_prediction_keys_vectorized_match_one_by_one() -> None:
    ids = [f"{i:032x}" for i in range(50)] + ["f" * 32, "F" * 32, "abc", "é" * 40, "x" * 64, "0" * 31 + "g",
                                             "0123456789abcdef" * 2 + " "]
    assert prediction_keys(ids).tolist() == [prediction_key(pid) for pid in ids]
    assert prediction_keys(ids[:50]).tolist() == [prediction_key(pid) for pid in ids[:50]]
    assert len(set(prediction_keys(ids).tolist())) == len(ids)  # sequential ids never share a key


def _sharing_a_key(first: str) -> str:
    """Another 32-hex id with the same key as ``first`` (high ^ low * MIX): the case the full-id check covers."""
    high, low = int(first[:16], 16), int(first[16:], 16)
    other_low = low ^ 1
    mask = 0xFFFF_FFFF_FFFF_FFFF
    other_high = high ^ (low * _MIX & mask) ^ (other_low * _MIX & mask)
    return f"{other_high:016x}{other_low:016x}"


def two_ids_sharing_a_key_never_label_each_others_prediction(url: str) -> None:
    store = QualityStore(url)
    first = "0123456789abcdef" * 2
    second = _sharing_a_key(first)
    assert prediction_key(first) == prediction_key(second) and first != second
    store.add_predictions([_prediction(first)])
    outcome = store.add_labels([Label(second, "1", 1.0, 150.0)], received_at=160.0)
    assert outcome.pending == [second]  # not joined with the other id's prediction
    assert store.newest_labeled("m", "1", 10) == [] and store.pending_count() == 1
    # the documented limit: the key is taken, so the first id's own label is refused as a duplicate
    assert store.add_labels([Label(first, "0", 0.0, 170.0)], received_at=171.0).duplicate == [first]


def the_window_reaches_past_many_unlabeled_newer_predictions(url: str) -> None:
    store = QualityStore(url)
    ids = [f"{i:032x}" for i in range(3000)]
    store.add_predictions([_prediction(pid, at=float(i)) for i, pid in enumerate(ids)])
    store.add_labels([Label(pid, "0", 0.0, 5000.0) for pid in ids[:40]], received_at=5000.0)  # only the oldest
    rows = store.newest_labeled("m", "1", 25)
    assert [r.predicted_at for r in rows] == [float(i) for i in range(39, 14, -1)]
    assert store.joined_count("m") == 40 and store.joined_count("other") == 0


def test_two_ids_sharing_a_key_never_label_each_others_prediction(tmp_path: Path) -> None:
    two_ids_sharing_a_key_never_label_each_others_prediction(f"sqlite:///{tmp_path / 'q.db'}")


def test_the_window_reaches_past_many_unlabeled_newer_predictions(tmp_path: Path) -> None:
    the_window_reaches_past_many_unlabeled_newer_predictions(f"sqlite:///{tmp_path / 'q.db'}")
