"""The speaker library and the matcher, with fake fingerprints (no models)."""

from __future__ import annotations

import json
import sqlite3
import threading

import numpy as np
import pytest

from saywho.errors import InvalidOptionError, SpeakerLibraryError, SpeakerNotFoundError
from saywho.speakers import library as speakers_mod
from saywho.speakers.identify import IDENTIFY_THRESHOLD, assign_names
from saywho.speakers.library import SpeakerExistsError, SpeakerLibrary
from saywho.types import Diarization


def voice(seed: int) -> np.ndarray:
    """A random unit vector: random 192-d voices are nearly orthogonal."""
    v = np.random.default_rng(seed).standard_normal(192)
    return v / np.linalg.norm(v)


def near(v: np.ndarray, similarity: float, seed: int = 99) -> np.ndarray:
    """A unit vector with cosine ``similarity`` to ``v``."""
    r = np.random.default_rng(seed).standard_normal(len(v))
    r -= (r @ v) * v
    r /= np.linalg.norm(r)
    return similarity * v + np.sqrt(1 - similarity**2) * r


@pytest.fixture
def library(tmp_path):
    return SpeakerLibrary(tmp_path / "speakers.db")


# -- matcher -------------------------------------------------------------------


def test_assign_names_matches_enrolled_voices():
    known = {"Ada": voice(1), "Bob": voice(2)}
    fingerprints = {"Speaker_0": near(voice(2), 0.8), "Speaker_1": near(voice(1), 0.75, seed=5)}
    names = assign_names(fingerprints, known)
    assert {k: v[0] for k, v in names.items()} == {"Speaker_0": "Bob", "Speaker_1": "Ada"}
    assert names["Speaker_0"][1] == pytest.approx(0.8, abs=1e-6)


def test_unknown_voice_stays_anonymous():
    known = {"Ada": voice(1)}
    names = assign_names({"Speaker_0": voice(3), "Speaker_1": near(voice(1), 0.9)}, known)
    assert names == {"Speaker_1": ("Ada", pytest.approx(0.9))}
    below = near(voice(1), IDENTIFY_THRESHOLD - 0.02)
    assert assign_names({"Speaker_0": below}, known) == {}


def test_two_speakers_never_get_the_same_name():
    # Both labels resemble Ada; only one can be Ada, the best overall pairing wins.
    known = {"Ada": voice(1), "Bob": voice(2)}
    fingerprints = {
        "Speaker_0": near(voice(1), 0.9, seed=7),
        "Speaker_1": near(voice(1), 0.8, seed=8),
    }
    names = assign_names(fingerprints, known)
    assert list(names) == ["Speaker_0"] and names["Speaker_0"][0] == "Ada"


def test_assignment_is_best_overall_not_greedy():
    # Greedy would give Ada to Speaker_0 (its best score, 0.80) and leave Speaker_1
    # (0.75 Ada, nothing else) anonymous; the best assignment names both.
    a, b = voice(1), voice(2)
    r = voice(3)
    r = r - (r @ a) * a - (r @ b) * b
    r /= np.linalg.norm(r)
    s0 = 0.8 * a + 0.55 * b + np.sqrt(1 - 0.8**2 - 0.55**2) * r
    s1 = near(a, 0.75, seed=4)
    s1 = s1 - (s1 @ b) * b
    names = assign_names({"Speaker_0": s0, "Speaker_1": s1}, {"Ada": a, "Bob": b}, threshold=0.5)
    assert names["Speaker_0"][0] == "Bob" and names["Speaker_1"][0] == "Ada"


def test_several_enrolments_and_bad_shapes():
    known = {"Ada": np.stack([near(voice(1), 0.9, seed=1), near(voice(1), 0.9, seed=2)])}
    assert assign_names({"S": voice(1)}, known)["S"][0] == "Ada"
    assert assign_names({}, known) == {}
    assert assign_names({"S": np.zeros(192)}, known) == {}
    with pytest.raises(InvalidOptionError):
        assign_names({"S": np.ones(10)}, known)


# -- library -------------------------------------------------------------------


def test_crud(library):
    assert library.list() == [] and len(library) == 0 and not library.exists()  # reads create nothing
    ada = library.add("Ada Lovelace", voice(1), source="a.wav", speech_s=12.0)
    assert ada.id.startswith("spk_") and ada.name == "Ada Lovelace" and len(ada.enrolments) == 1
    assert ada.enrolments[0].source == "a.wav" and ada.created_at.endswith("Z")
    library.add("Bob", np.stack([voice(2), near(voice(2), 0.9)]), source="b.wav")
    assert [s.name for s in library.list()] == ["Ada Lovelace", "Bob"]
    assert library.get("ada lovelace").id == ada.id == library.get(ada.id).id
    assert library.known()["Bob"].shape == (2, 192)
    np.testing.assert_allclose(library.known()["Ada Lovelace"][0], voice(1), atol=1e-6)

    renamed = library.rename("Ada Lovelace", "Ada")
    assert renamed.id == ada.id and renamed.name == "Ada"
    library.enrol("Ada", voice(1), source="c.wav")
    assert len(library.get("Ada").enrolments) == 2
    removed = library.remove("Bob")
    assert removed.name == "Bob" and [s.name for s in library.list()] == ["Ada"]
    with pytest.raises(SpeakerNotFoundError):
        library.get("Bob")
    with pytest.raises(SpeakerNotFoundError):
        library.remove("Bob")


def test_duplicate_names_refused_or_merged_explicitly(library):
    library.add("Ada", voice(1), source="a.wav")
    library.add("Bob", voice(2), source="b.wav")
    with pytest.raises(SpeakerExistsError, match="already in the library"):
        library.add("ada", voice(3), source="x.wav")
    merged = library.add("ADA", voice(1), source="again.wav", merge=True)
    assert merged.name == "Ada" and len(merged.enrolments) == 2 and len(library) == 2
    with pytest.raises(SpeakerExistsError, match="taken"):
        library.rename("Bob", "ada")
    assert library.rename("Bob", "BOB").name == "BOB"  # a change of case of one's own name is fine


def test_bad_names_and_fingerprints(library):
    for bad in ("", "   "):
        with pytest.raises(InvalidOptionError):
            library.add(bad, voice(1), source="x")
    with pytest.raises(InvalidOptionError):
        library.add("Ada", np.ones(10), source="x")
    with pytest.raises(InvalidOptionError):
        library.add("Ada", np.zeros(192), source="x")
    assert library.add("  Ada   King ", voice(1), source="x").name == "Ada King"


def test_export_import_round_trip(library, tmp_path):
    library.add("Ada", np.stack([voice(1), voice(4)]), source="a.wav", speech_s=5.5)
    library.add("Bob", voice(2), source="b.wav")
    data = json.loads(json.dumps(library.export()))  # through JSON text
    assert data["format"] == "saywho-speakers" and len(data["speakers"]) == 2
    assert "audio" not in json.dumps(data)

    other = SpeakerLibrary(tmp_path / "other.db")
    imported = other.import_(data)
    assert sorted(s.name for s in imported) == ["Ada", "Bob"]
    for name, vectors in library.known().items():
        np.testing.assert_allclose(other.known()[name], vectors, atol=1e-6)
    assert other.get("Ada").enrolments[0].speech_s == 5.5
    assert other.export()["speakers"] == data["speakers"]

    # Importing again: refused as a whole; with merge, nothing is duplicated.
    with pytest.raises(SpeakerExistsError):
        other.import_(data)
    other.import_(data, merge=True)
    assert other.known()["Ada"].shape == (2, 192)


def test_import_rejects_malformed_documents(library):
    with pytest.raises(InvalidOptionError):
        library.import_({"format": "something-else"})
    bad = {"format": "saywho-speakers", "version": 1, "speakers": [{"name": "Ada", "fingerprints": [{"vector": [1]}]}]}
    with pytest.raises(InvalidOptionError, match="entry 0"):
        library.import_(bad)
    assert len(library) == 0


def test_corrupt_file_is_reported_not_replaced(tmp_path):
    path = tmp_path / "speakers.db"
    garbage = b"this is not an sqlite database at all" * 100
    path.write_bytes(garbage)
    library = SpeakerLibrary(path)
    with pytest.raises(SpeakerLibraryError, match="cannot be read"):
        library.list()
    with pytest.raises(SpeakerLibraryError, match="cannot be read"):
        library.add("Ada", voice(1), source="x")
    assert path.read_bytes() == garbage


def test_newer_schema_is_refused(library):
    library.add("Ada", voice(1), source="x")
    with sqlite3.connect(library.path) as conn:
        conn.execute("UPDATE speaker_schema SET version = 99")
    with pytest.raises(SpeakerLibraryError, match="newer"):
        library.list()


def test_migrations_run_in_order_on_existing_files(library, monkeypatch):
    library.add("Ada", voice(1), source="x")
    assert library.schema_version() == speakers_mod.SCHEMA_VERSION == 1
    extra = ("ALTER TABLE speakers ADD COLUMN notes TEXT",)
    monkeypatch.setattr(speakers_mod, "MIGRATIONS", [*speakers_mod.MIGRATIONS, extra])
    monkeypatch.setattr(speakers_mod, "SCHEMA_VERSION", 2)
    assert [s.name for s in library.list()] == ["Ada"]  # a read of an older schema does not migrate
    assert library.schema_version() == 1
    library.add("Bob", voice(2), source="y")  # the first write does
    assert library.schema_version() == 2
    with sqlite3.connect(library.path) as conn:
        assert "notes" in [r[1] for r in conn.execute("PRAGMA table_info(speakers)")]


def test_shares_a_database_with_other_tables(tmp_path):
    path = tmp_path / "server.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY)")
        conn.execute("PRAGMA user_version = 7")
    library = SpeakerLibrary(path)
    library.add("Ada", voice(1), source="x")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "jobs" in tables and all(t.startswith(("speaker", "sqlite_", "jobs")) for t in tables)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_writers(library):
    errors = []

    def enrol(i: int) -> None:
        try:
            SpeakerLibrary(library.path).add(f"Voice {i}", voice(i), source=f"{i}.wav")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=enrol, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(library) == 8


def test_concurrent_first_writers_of_new_files(tmp_path):
    """Threads that create one new library at once all succeed. SQLite answered "database
    is locked" at once to the switch to WAL that raced another one (3-4 times in 150
    files before ``db.use_wal`` retried it)."""
    errors = []

    def enrol(path, i: int) -> None:
        try:
            SpeakerLibrary(path).add(f"Voice {i}", voice(i), source=f"{i}.wav")
        except Exception as exc:
            errors.append(exc)

    for n in range(40):
        path = tmp_path / f"speakers{n}.db"
        threads = [threading.Thread(target=enrol, args=(path, i)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(SpeakerLibrary(path)) == 8


def test_identifier_names_diarized_speakers(library):
    library.add("Ada", voice(1), source="x")
    diarization = Diarization(duration=10, turns=(), exclusive=(), speakers=("Speaker_0", "Speaker_1"),
                              fingerprints={"Speaker_0": tuple(voice(5)), "Speaker_1": tuple(near(voice(1), 0.8))})
    identify = library.identifier()
    assert identify(diarization) == {"Speaker_1": ("Ada", pytest.approx(0.8))}
    assert SpeakerLibrary(library.path.with_name("none.db")).identifier()(diarization) == {}


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("SAYWHO_SPEAKERS_DB", str(tmp_path / "x.db"))
    assert speakers_mod.default_path() == tmp_path / "x.db"
    monkeypatch.delenv("SAYWHO_SPEAKERS_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert speakers_mod.default_path() == tmp_path / "saywho" / "speakers.db"
