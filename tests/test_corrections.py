"""Corrections to a job's speakers (merge, move a line or words, split, undo) through the
HTTP API, and what follows them: every export, renames, enrolment in the library. Also
the partial transcript of a running job's events and recorded WebM getting a duration."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import numpy as np
import pytest

from saywho.jobs import corrections
from saywho.settings import Settings
from saywho.types import SAMPLE_RATE

from .jobs_fakes import DEFAULT_LINES, ScriptedTranscriber, transcript_from_lines, write_tone_wav

fastapi_testclient = pytest.importorskip("fastapi.testclient")


class _NoInference:
    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...


def make_client(settings: Settings, transcriber):
    from saywho.server.app import create_app

    app = create_app(settings, inference=_NoInference())
    app.state.jobs.runner.transcriber = transcriber
    app.state.jobs.runner.progress_interval_s = 0
    return fastapi_testclient.TestClient(app, base_url="http://localhost")


def finished_job(client, tmp_path, name="meeting.wav"):
    path = tmp_path / name
    write_tone_wav(path, 20.0)
    with open(path, "rb") as f:
        job = client.post("/v1/jobs", files={"file": (name, f, "audio/wav")}).json()
    deadline = time.monotonic() + 30
    while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "finished":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)
    return job["id"]


@pytest.fixture
def client(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", db_path=tmp_path / "data" / "server.db")
    with make_client(settings, ScriptedTranscriber(delay_s=0)) as c:
        yield c


def result(client, job_id, fmt="json"):
    r = client.get(f"/v1/jobs/{job_id}/result", params={"format": fmt})
    assert r.status_code == 200, r.text
    return r.json() if fmt.endswith("json") else r.text


def test_merge_two_speakers_every_export_follows_and_undo_restores(client, tmp_path) -> None:
    job_id = finished_job(client, tmp_path)
    before = result(client, job_id)
    assert [s["label"] for s in before["speakers"]] == ["Speaker_0", "Speaker_1", "Speaker_2"]
    r = client.post(f"/v1/jobs/{job_id}/corrections", json={"op": "merge", "source": "Speaker_2",
                                                            "target": "Speaker_0"})
    assert r.status_code == 200, r.text
    after = result(client, job_id)
    assert [s["label"] for s in after["speakers"]] == ["Speaker_0", "Speaker_1"]
    talk = {s["label"]: s["speech_s"] for s in before["speakers"]}
    assert after["speakers"][0]["speech_s"] == pytest.approx(talk["Speaker_0"] + talk["Speaker_2"])
    assert {s["speaker"] for s in after["segments"]} == {"Speaker_0", "Speaker_1"}
    assert {t["speaker"] for t in after["diarization"]["turns"]} == {"Speaker_0", "Speaker_1"}
    assert "Speaker_2" not in result(client, job_id, "srt")
    assert "Speaker_2" not in result(client, job_id, "rttm")
    assert len(result(client, job_id, "diarized_json")["segments"]) == len(DEFAULT_LINES)
    # a merged voice's fingerprint is the speech-weighted mean of both (unit length)
    fingerprint = after["diarization"]["fingerprints"]["Speaker_0"]
    assert sum(x * x for x in fingerprint) == pytest.approx(1.0)

    undone = client.delete(f"/v1/jobs/{job_id}/corrections/last").json()
    assert undone["undone"]["op"] == "merge" and undone["corrections"] == 0
    assert result(client, job_id) == before
    assert client.delete(f"/v1/jobs/{job_id}/corrections/last").json()["undone"] is None


def test_move_a_line_and_some_words_to_other_speakers_then_rename_the_new_one(client, tmp_path) -> None:
    job_id = finished_job(client, tmp_path)
    # line 3 ("Can somebody send me the spreadsheet before lunch?") is Speaker_2's; give it to Speaker_1
    r = client.post(f"/v1/jobs/{job_id}/corrections", json={"op": "move", "line": 3, "target": "Speaker_1"})
    assert r.status_code == 200, r.text
    moved = result(client, job_id)
    assert moved["segments"][3]["speaker"] == "Speaker_1"
    assert all(w["speaker"] == "Speaker_1" for w in moved["segments"][3]["words"])
    assert "Speaker_2" not in {t["speaker"] for t in moved["diarization"]["turns"]}
    # words 2-4 of line 0 to a new speaker: the line becomes three lines
    r = client.post(f"/v1/jobs/{job_id}/corrections", json={"op": "move", "line": 0, "target": "new",
                                                            "first_word": 2, "last_word": 4})
    assert r.json()["correction"]["target"] == "Speaker_3"
    moved = result(client, job_id)
    texts = [(s["speaker"], s["text"].strip()) for s in moved["segments"][:3]]
    assert texts == [("Speaker_0", "Good morning"), ("Speaker_3", "everyone, let us"),
                     ("Speaker_0", "start with the budget.")]
    assert client.put(f"/v1/jobs/{job_id}/speakers/Speaker_3", json={"name": "Grace"}).status_code == 200
    assert "[Grace] everyone, let us" in result(client, job_id, "srt")
    assert client.get(f"/v1/jobs/{job_id}/corrections").json()["data"][1]["target"] == "Speaker_3"


def test_split_a_line(client, tmp_path) -> None:
    job_id = finished_job(client, tmp_path)
    count = len(result(client, job_id)["segments"])
    assert client.post(f"/v1/jobs/{job_id}/corrections", json={"op": "split", "line": 1, "word": 3}).status_code == 200
    after = result(client, job_id)
    assert len(after["segments"]) == count + 1
    assert after["segments"][1]["text"].strip() == "I think the"
    assert after["segments"][2]["text"].strip().startswith("numbers look fine")
    assert [s["id"] for s in after["segments"]] == list(range(count + 1))


@pytest.mark.parametrize(("edit", "status", "param"), [
    ({"op": "erase"}, 400, "op"),
    ({"op": "merge", "source": "Speaker_0", "target": "Speaker_0"}, 400, "target"),
    ({"op": "merge", "source": "Speaker_9", "target": "Speaker_0"}, 404, "source"),
    ({"op": "move", "line": 99, "target": "Speaker_0"}, 404, "line"),
    ({"op": "move", "line": 0, "target": "Speaker_1", "first_word": 5, "last_word": 2}, 400, "first_word"),
    ({"op": "split", "line": 0, "word": 0}, 400, "word"),
    ({"op": "split", "line": "0", "word": 1}, 400, "line"),
])
def test_a_bad_correction_is_a_clear_error_and_changes_nothing(client, tmp_path, edit, status, param) -> None:
    job_id = finished_job(client, tmp_path)
    before = result(client, job_id)
    r = client.post(f"/v1/jobs/{job_id}/corrections", json=edit)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"]
    assert result(client, job_id) == before
    assert client.post(f"/v1/jobs/{job_id}/corrections", content=b"not json").status_code == 400


def test_enrolling_a_merged_speaker_uses_both_voices(client, tmp_path) -> None:
    job_id = finished_job(client, tmp_path)
    client.post(f"/v1/jobs/{job_id}/corrections", json={"op": "merge", "source": "Speaker_2", "target": "Speaker_0"})
    r = client.put(f"/v1/jobs/{job_id}/speakers/Speaker_0", json={"name": "Ada", "enrol": True})
    assert r.status_code == 200, r.text
    assert r.json()["enrolled"]["name"] == "Ada"
    speakers = client.get("/v1/speakers").json()["data"]
    assert [s["name"] for s in speakers] == ["Ada"]


def test_corrections_replay_the_same_way_from_the_stored_edits() -> None:
    transcript = transcript_from_lines(DEFAULT_LINES, 20.0)
    edits = []
    for edit in ({"op": "move", "line": 2, "target": "new"}, {"op": "merge", "source": "Speaker_1",
                                                                 "target": "Speaker_3"}):
        current = corrections.apply_corrections(transcript, edits)
        edits.append(corrections.validate(current, edit))
    once = corrections.apply_corrections(transcript, json.loads(json.dumps(edits)))
    assert [s.label for s in once.speakers] == ["Speaker_0", "Speaker_2", "Speaker_3"]
    assert once == corrections.apply_corrections(transcript, edits)
    assert transcript.speakers[1].label == "Speaker_1"  # the input is never edited in place


def test_running_job_events_carry_the_lines_of_finished_chunks(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data", db_path=tmp_path / "data" / "server.db")
    hold = threading.Event()
    with make_client(settings, ScriptedTranscriber(chunk_s=10.0, delay_s=0.05, hold=hold)) as client:
        path = tmp_path / "standup.wav"
        write_tone_wav(path, 20.0)
        with open(path, "rb") as f:
            job = client.post("/v1/jobs", files={"file": ("standup.wav", f, "audio/wav")}).json()
        partial = []
        with client.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
            name = None
            for line in events.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name == "chunk":
                    data = json.loads(line.split(":", 1)[1])
                    partial += data.get("partial", [])
                    if data["completed"] == 1:
                        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"
                        hold.set()
                elif name == "finished":
                    break
    assert [c["index"] for c in partial] == [0, 1]
    first = partial[0]["lines"]
    assert first[0]["text"] == DEFAULT_LINES[0][3] and first[0]["start"] == pytest.approx(0.5)
    assert [x["speaker"] for x in first] == ["Speaker_0", "Speaker_1", "Speaker_0"]
    assert partial[1]["lines"][0]["start"] == pytest.approx(10.5)  # seconds from the recording's start


def test_a_recording_without_a_declared_duration_is_stored_with_one(client, tmp_path) -> None:
    webm = tmp_path / "recording.webm"
    piped = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=300:d=4", "-c:a", "libopus",
                            "-f", "webm", "-"], capture_output=True, check=True).stdout
    webm.write_bytes(piped)  # written to a pipe, as MediaRecorder does: no duration in the header
    from saywho.audio.decode import probe_duration

    assert probe_duration(webm) is None
    with open(webm, "rb") as f:
        job = client.post("/v1/jobs", files={"file": ("recording.webm", f, "audio/webm")}).json()
    assert job["duration"] == pytest.approx(4.0, abs=0.1)
    audio = client.get(f"/v1/jobs/{job['id']}/audio")
    assert audio.headers["content-type"] == "audio/webm"
    stored = tmp_path / "stored.webm"
    stored.write_bytes(audio.content)
    assert probe_duration(stored) == pytest.approx(4.0, abs=0.1)


def test_undo_takes_back_renames_moves_and_splits_last_first(client, tmp_path) -> None:
    job_id = finished_job(client, tmp_path)
    before = result(client, job_id)
    assert client.put(f"/v1/jobs/{job_id}/speakers/Speaker_1", json={"name": "Ada"}).status_code == 200
    named = result(client, job_id)
    client.post(f"/v1/jobs/{job_id}/corrections", json={"op": "move", "line": 3, "target": "new"})
    client.post(f"/v1/jobs/{job_id}/corrections", json={"op": "split", "line": 1, "word": 3})
    assert client.put(f"/v1/jobs/{job_id}/speakers/Speaker_1", json={"name": "Grace"}).status_code == 200
    history = client.get(f"/v1/jobs/{job_id}/corrections").json()["data"]
    assert [e["op"] for e in history] == ["rename", "move", "split", "rename"]
    assert history[-1] == {"op": "rename", "label": "Speaker_1", "name": "Grace", "before": "Ada"}

    def undo():
        r = client.delete(f"/v1/jobs/{job_id}/corrections/last")
        assert r.status_code == 200, r.text
        return r.json()

    assert undo()["undone"]["op"] == "rename"
    assert "[Ada]" in result(client, job_id, "srt") and "Grace" not in result(client, job_id, "srt")
    assert undo()["undone"]["op"] == "split"
    assert undo()["undone"]["op"] == "move"
    assert result(client, job_id) == named
    last = undo()
    assert last["undone"]["name"] == "Ada" and last["corrections"] == 0
    assert client.get(f"/v1/jobs/{job_id}").json()["speaker_names"] == {}
    assert result(client, job_id) == before
    assert undo()["undone"] is None
    # a name set to what it already is changes nothing, so it adds nothing to undo
    client.put(f"/v1/jobs/{job_id}/speakers/Speaker_0", json={"name": ""})
    assert client.get(f"/v1/jobs/{job_id}/corrections").json()["data"] == []


def test_a_move_keeps_the_machine_voice_when_no_voice_can_be_made(tmp_path) -> None:
    """Without a model runner (or when it fails) the correction still stands."""
    settings = Settings(data_dir=tmp_path / "data", db_path=tmp_path / "data" / "server.db")

    class Failing(ScriptedTranscriber):
        def voice(self, audio_path, spans, *, duration_s):
            raise RuntimeError("no worker")

    with make_client(settings, Failing(delay_s=0)) as client:
        job_id = finished_job(client, tmp_path)
        machine = result(client, job_id)["diarization"]["fingerprints"]
        r = client.post(f"/v1/jobs/{job_id}/corrections", json={"op": "move", "line": 1, "target": "Speaker_0"})
        assert r.status_code == 200 and "voices" not in r.json()["correction"]
        after = result(client, job_id)
        assert after["segments"][1]["speaker"] == "Speaker_0"
        assert after["diarization"]["fingerprints"]["Speaker_0"] == machine["Speaker_0"]


# ---------------------------------------------------------------------------
# Voices follow corrections: real fingerprints (CAM++) of two synthetic voices
# ---------------------------------------------------------------------------


class VoicedTranscriber(ScriptedTranscriber):
    """Scripted lines whose speakers carry real fingerprints of the audio the machine gave
    them; ``voice`` is the inference worker's own handler, run in this process."""

    def __init__(self, lines, audio, **kwargs) -> None:
        super().__init__(lines, **kwargs)
        self.audio = audio

    def __call__(self, job, chunks, hook):
        import dataclasses

        from saywho.speakers.service import fingerprint_of_spans

        transcript = super().__call__(job, chunks, hook)
        voices = {label: tuple(float(x) for x in fingerprint_of_spans(
            self.audio, [(s, e) for s, e, who, _ in self.lines if who == label])[0])
            for label in transcript.diarization.speakers}
        return dataclasses.replace(transcript,
                                   diarization=dataclasses.replace(transcript.diarization, fingerprints=voices))

    def voice(self, audio_path, spans, *, duration_s):
        from saywho.server.worker import Worker

        return Worker(Settings()).handle("voice", {"audio_path": str(audio_path), "spans": spans}, lambda e: None)


@pytest.mark.slow
def test_enrolling_a_corrected_speaker_learns_the_corrected_voice(tmp_path) -> None:
    from saywho.evaluation.synth import SENTENCES, conversation
    from saywho.speakers.identify import embed_reference
    from saywho.speakers.library import SpeakerLibrary
    from saywho.speakers.service import fingerprint_of_spans

    ada, bob = "flite:slt", "flite:rms"
    conv = conversation([(ada, SENTENCES[0]), (bob, SENTENCES[1]), (ada, SENTENCES[2]), (bob, SENTENCES[3]),
                         (bob, SENTENCES[8])], gap_s=0.6)
    # the machine's mistake: Bob's fourth line went to Ada's speaker (Speaker_0)
    labels = ["Speaker_0", "Speaker_1", "Speaker_0", "Speaker_0", "Speaker_1"]
    lines = [(t.start, t.end, label, text) for t, label, (_, text) in zip(conv.turns, labels, conv.texts, strict=True)]
    path = conv.write(tmp_path / "meeting.wav")
    # each true voice, from other sentences
    truth = {v: embed_reference(conversation([(v, SENTENCES[5]), (v, SENTENCES[6])]).samples) for v in (ada, bob)}

    settings = Settings(data_dir=tmp_path / "data", db_path=tmp_path / "data" / "server.db",
                        speakers_db=tmp_path / "data" / "speakers.db")
    with make_client(settings, VoicedTranscriber(lines, conv.samples, delay_s=0)) as client:
        with open(path, "rb") as f:
            job_id = client.post("/v1/jobs", files={"file": ("meeting.wav", f, "audio/wav")}).json()["id"]
        deadline = time.monotonic() + 60
        while client.get(f"/v1/jobs/{job_id}").json()["status"] != "finished":
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.05)
        machine = result(client, job_id)["diarization"]["fingerprints"]

        # Ada's line and Bob's after it are one line of Speaker_0's: move Bob's words out
        block = result(client, job_id)["segments"][2]
        first = len(SENTENCES[2].split())
        assert block["speaker"] == "Speaker_0" and block["words"][first]["word"].strip() == SENTENCES[3].split()[0]
        r = client.post(f"/v1/jobs/{job_id}/corrections", json={
            "op": "move", "line": 2, "target": "Speaker_1", "first_word": first, "last_word": len(block["words"]) - 1})
        assert r.status_code == 200, r.text
        assert r.json()["correction"]["voices"] == ["Speaker_0", "Speaker_1"]
        corrected = result(client, job_id)["diarization"]["fingerprints"]
        # Speaker_0 lost Bob's line: much closer to Ada; Speaker_1 gained more of Bob: still Bob
        scores = {label: [float(np.dot(fp[label], truth[voice])) for fp in (machine, corrected)]
                  for label, voice in (("Speaker_0", ada), ("Speaker_1", bob))}
        away = [float(np.dot(fp["Speaker_0"], truth[bob])) for fp in (machine, corrected)]
        print("cosine to the true voice, machine -> corrected:", scores, "Speaker_0 to Bob:", away)
        assert scores["Speaker_0"][1] > scores["Speaker_0"][0] + 0.02, scores
        assert away[1] < away[0] - 0.05, away  # and Bob's voice is no longer in it
        assert scores["Speaker_1"][1] >= scores["Speaker_1"][0], scores
        for label, name in (("Speaker_0", "Ada"), ("Speaker_1", "Bob")):
            r = client.put(f"/v1/jobs/{job_id}/speakers/{label}", json={"name": name, "enrol": True})
            assert r.status_code == 200, r.text
        known = SpeakerLibrary(settings.speakers_db).known()
        # the library learnt the corrected voices: Ada's lines only, not Bob's line the machine gave her
        assert float(np.dot(known["Ada"][0], corrected["Speaker_0"])) == pytest.approx(1.0, abs=1e-4)
        assert float(np.dot(known["Ada"][0], truth[ada])) > float(np.dot(machine["Speaker_0"], truth[ada])) + 0.02
        assert float(np.dot(known["Bob"][0], truth[bob])) > float(np.dot(known["Bob"][0], truth[ada]))

        # undo (the two names, then the move): the machine's voices again
        for _ in range(3):
            client.delete(f"/v1/jobs/{job_id}/corrections/last")
        assert result(client, job_id)["diarization"]["fingerprints"] == machine

        # a merge: the speaker left holds every line, and its voice is made from all of them
        r = client.post(f"/v1/jobs/{job_id}/corrections", json={"op": "merge", "source": "Speaker_1",
                                                                "target": "Speaker_0"})
        assert r.json()["correction"]["voices"] == ["Speaker_0"]
        merged = result(client, job_id)["diarization"]["fingerprints"]["Speaker_0"]
        everyone = fingerprint_of_spans(conv.samples, [(t.start, t.end) for t in conv.turns])[0]
        assert float(np.dot(merged, everyone)) > 0.99


def test_a_voice_from_many_lines_uses_lines_spread_over_them(monkeypatch) -> None:
    from saywho.speakers import service

    heard = []
    monkeypatch.setattr(service, "embed_reference_with_speech",
                        lambda audio, min_speech_s: heard.append(audio) or (audio[:3], 0.0))
    samples = np.repeat(np.arange(1, 101, dtype=np.float32), SAMPLE_RATE)  # second i holds the value i + 1
    spans = [(float(i), i + 1.0) for i in range(100)]
    service.fingerprint_of_spans(samples, spans, max_s=10.0)
    values = sorted(set(heard[-1].tolist()) - {0.0})
    assert len(values) == 10 and values[0] == 1.0 and values[-1] == 100.0  # from the first line to the last
    service.fingerprint_of_spans(samples, spans[:5])
    assert sorted(set(heard[-1].tolist()) - {0.0}) == [1.0, 2.0, 3.0, 4.0, 5.0]  # under the cap: every line
