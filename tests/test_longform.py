"""Long recordings without models: chunk plan, global speakers, stitching, resume,
executors and truncated input (the chunk worker is a deterministic fake)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from saywho.audio.decode import decode_audio, write_wav
from saywho.diarization.chunk_clustering import cluster_local_speakers
from saywho.errors import InvalidOptionError
from saywho.formats import transcript_to_dict
from saywho.longform.chunk import ChunkResult
from saywho.longform.plan import Chunk, ChunkPlan, find_cut, plan_chunks
from saywho.longform.run import transcribe_long
from saywho.longform.stitch import global_speakers, stitch
from saywho.longform.store import DirectoryChunkStore
from saywho.types import SAMPLE_RATE, SpeakerCount, SpeakerTurn, TranscribeOptions, Word

from . import longform_fakes as fakes
from .conftest import require_tools

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = TranscribeOptions(language="en")


def _blocks(x: np.ndarray, size: int):
    for i in range(0, len(x), size):
        yield x[i: i + size]


def _lines(n: int, seed: int = 0) -> list[tuple[str, float]]:
    rng = np.random.default_rng(seed)
    names = list(fakes.PITCHES)
    return [(names[i % 3] if i % 7 else names[3], float(rng.uniform(1.0, 3.0))) for i in range(n)]


@pytest.fixture(scope="module")
def tone_file(tmp_path_factory: pytest.TempPathFactory):
    samples, turns = fakes.tone_recording(_lines(60))  # about 2.5 minutes
    path = tmp_path_factory.mktemp("tones") / "tones.wav"
    write_wav(path, samples)
    return path, turns


def _comparable(transcript) -> dict:
    d = transcript_to_dict(transcript)
    d.pop("saywho_version")
    return d


# --- chunk plan ------------------------------------------------------------------------


def test_plan_cuts_in_pauses_and_covers_everything():
    samples, turns = fakes.tone_recording(_lines(40))
    plan = plan_chunks(_blocks(samples, 16_000 * 7), chunk_s=20, speech=fakes.energy_speech)
    chunks = plan.chunks
    assert chunks[0].start == 0 and chunks[-1].end == len(samples)
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks[:-1]:
        assert 18 <= c.duration_s <= 22  # target 20 s, cut within 2 s of it
        cut = c.end_s
        assert not any(t.start < cut < t.end for t in turns), f"cut at {cut} splits a turn"
    # The tail is never a sliver: it joined the chunk before it if short.
    assert chunks[-1].duration_s >= 10 or len(chunks) == 1


def test_plan_does_not_depend_on_block_size():
    samples, _ = fakes.tone_recording(_lines(30))
    seen = []
    a = plan_chunks(_blocks(samples, 16_000 * 30), chunk_s=15, speech=fakes.energy_speech,
                    on_chunk=lambda c, x: seen.append((c, x.copy())))
    b = plan_chunks(_blocks(samples, 12_345), chunk_s=15, speech=fakes.energy_speech)
    assert a == b
    assert np.array_equal(np.concatenate([x for _, x in seen]), samples)
    assert all(len(x) == c.end - c.start for c, x in seen)


def test_short_tail_joins_previous_chunk_and_short_file_is_one_chunk():
    samples, _ = fakes.tone_recording([("alice", 2.0)] * 9)  # ~23.9 s
    plan = plan_chunks([samples], chunk_s=20, speech=fakes.energy_speech)
    assert len(plan.chunks) == 1 and plan.chunks[0].end == len(samples)
    assert plan_chunks([np.zeros(100, np.float32)], chunk_s=20).chunks == (Chunk(0, 0, 100),)


def test_find_cut_without_pauses_takes_the_quietest_moment():
    t = np.arange(16_000 * 10) / 16_000
    x = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    x[16_000 * 6: 16_000 * 6 + 1600] *= 0.01  # a dip, 1 s after the target
    cut = find_cut(x, 16_000 * 5, 16_000 * 2, speech=lambda w: [(0, len(w))])
    assert 16_000 * 6 <= cut <= 16_000 * 6 + 1600


def test_find_cut_prefers_the_pause_nearest_the_target():
    x = np.full(16_000 * 10, 0.3, np.float32)
    for a in (3.0, 5.4, 6.5):  # three half-second pauses
        x[int(a * 16_000): int((a + 0.5) * 16_000)] = 0
    cut = find_cut(x, 16_000 * 5, 16_000 * 3, speech=fakes.energy_speech)
    assert abs(cut / 16_000 - 5.65) < 0.05


# --- chunk results, global speakers ------------------------------------------------------


def _result(speakers: dict[str, tuple[float, ...]], duration: float = 20.0) -> ChunkResult:
    turns, words = [], []
    for i, label in enumerate(speakers):
        turns.append(SpeakerTurn(1.0 + 4 * i, 4.0 + 4 * i, label))
        words.append(Word(1.5 + 4 * i, 2.0 + 4 * i, f" w{i}", 0.9, label))
    return ChunkResult(duration=duration, segments=tuple(turns), speakers_detected=tuple(speakers),
                       fingerprints=dict(speakers), words=tuple(words), models={"asr": "fake"},
                       language="en", exclusive=tuple(turns))


def test_chunk_result_json_round_trip_and_contract_keys():
    r = fakes.fake_process_chunk(fakes.tone_recording([("alice", 2), ("bob", 2)])[0], OPTIONS)
    d = json.loads(json.dumps(r.to_dict()))
    assert {"duration", "segments", "speakers_detected", "fingerprints", "words", "models"} <= set(d)
    assert set(d["segments"][0]) == {"start_s", "end_s", "speaker"}
    assert d["speakers_detected"] == ["Speaker_0", "Speaker_1"]
    assert len(d["fingerprints"]["Speaker_1"]) == fakes.DIM
    assert ChunkResult.from_dict(d) == r


def test_same_voice_in_chunk_1_and_chunk_7_gets_one_global_label():
    rng = np.random.default_rng(1)
    alice = fakes.voice_fingerprint(220.0)
    bob = fakes.voice_fingerprint(470.0)
    carol = fakes.voice_fingerprint(810.0)

    def noisy(v):
        x = np.asarray(v) + rng.normal(0, 0.05, len(v))
        return tuple(x / np.linalg.norm(x))

    # Alice talks in the first and the seventh chunk only; local labels differ.
    results = [_result({"Speaker_0": noisy(alice), "Speaker_1": noisy(bob)})]
    results += [_result({"Speaker_0": noisy(bob), "Speaker_1": noisy(carol)}) for _ in range(5)]
    results += [_result({"Speaker_0": noisy(carol), "Speaker_1": noisy(alice)})]
    mappings, centroids = global_speakers(results)
    assert mappings[0]["Speaker_0"] == mappings[6]["Speaker_1"]  # alice
    assert mappings[0]["Speaker_1"] == mappings[1]["Speaker_0"] == mappings[5]["Speaker_0"]  # bob
    assert mappings[6]["Speaker_0"] == mappings[3]["Speaker_1"]  # carol
    assert len(centroids) == 3

    plan = ChunkPlan(tuple(Chunk(i, i * 320_000, (i + 1) * 320_000) for i in range(7)), 140.0)
    t = stitch(plan, results, OPTIONS)
    assert [s.label for s in t.speakers] == ["Speaker_0", "Speaker_1", "Speaker_2"]  # order of appearance
    alice_label = t.diarization.turns[0].speaker
    assert alice_label == "Speaker_0"
    in_chunk_7 = [x for x in t.diarization.turns if x.start >= 120]
    assert in_chunk_7[1].speaker == alice_label
    assert [w.speaker for w in t.words if w.start >= 120] == ["Speaker_2", "Speaker_0"]
    assert t.words[-1].start == 125.5  # shifted by the chunk's start


def test_far_apart_voices_are_never_merged():
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.normal(size=(32, 6)))[0].T  # six orthonormal "voices"
    results = [
        _result({f"Speaker_{j}": tuple(basis[(i + j) % 6]) for j in range(2)}) for i in range(12)
    ]
    mappings, centroids = global_speakers(results)
    assert len(centroids) == 6
    for i, _m in enumerate(results):
        for j in range(2):
            same = [k for k, r in enumerate(results) for lab in r.speakers_detected
                    if np.allclose(r.fingerprints[lab], basis[(i + j) % 6])]
            assert all(mappings[k] for k in same)
    labels = {mappings[i][f"Speaker_{j}"]: (i + j) % 6 for i in range(12) for j in range(2)}
    assert len(labels) == 6 and len(set(labels.values())) == 6
    # A max_speakers hint merges, but an exact count of the truth changes nothing.
    assert len(global_speakers(results, SpeakerCount(num=6))[1]) == 6
    assert len(global_speakers(results, SpeakerCount(max=4))[1]) == 4


def test_cannot_link_keeps_two_local_speakers_of_a_chunk_apart():
    a = np.array([1.0, 0.0, 0.0])
    close = np.array([0.8, 0.6, 0.0])  # similarity 0.8 with a: merged if in different chunks
    x = np.stack([a, close, a, close])
    w = np.array([10.0, 10.0, 10.0, 10.0])
    assert list(cluster_local_speakers(x, w, np.array([0, 0, 1, 1]))) == [0, 1, 0, 1]
    assert list(cluster_local_speakers(x, w, np.array([0, 1, 2, 3]))) == [0, 0, 0, 0]
    # Too little speech to be a speaker: folded into the most similar one it may join.
    assert list(cluster_local_speakers(x[:3], np.array([10.0, 0.5, 10.0]), np.array([0, 1, 2]),
                                       threshold=0.95)) == [0, 0, 0]
    assert list(cluster_local_speakers(x, w, np.array([0, 0, 1, 1]), SpeakerCount(num=1))) == [0, 0, 0, 0]
    assert list(cluster_local_speakers(x, w, np.array([0, 1, 2, 3]), SpeakerCount(min=2))) == [0, 1, 0, 1]


# --- the whole long path with the fake worker --------------------------------------------


def test_transcribe_long_keeps_speakers_across_chunks(tone_file, tmp_path):
    path, turns = tone_file
    done = []
    t = transcribe_long(path, OPTIONS, chunk_s=20, work_dir=tmp_path / "w", processor=fakes.fake_process_chunk,
                        on_chunk=lambda c, r: done.append(c.index),
                        hook=lambda step, **kw: done.append((step, kw)) if step == "chunks" else None)
    chunk_indices = [x for x in done if isinstance(x, int)]
    assert sorted(chunk_indices) == list(range(len(chunk_indices))) and len(chunk_indices) >= 6
    assert ("chunks", {"completed": len(chunk_indices), "total": len(chunk_indices)}) in done
    assert [s.label for s in t.speakers] == ["Speaker_0", "Speaker_1", "Speaker_2", "Speaker_3"]
    # Every reference turn is one hypothesis turn with the same (mapped) speaker throughout.
    mapping: dict[str, str] = {}
    for ref in turns:
        hyp = [x for x in t.diarization.turns if x.start < ref.end and x.end > ref.start]
        assert len(hyp) == 1
        assert mapping.setdefault(ref.speaker, hyp[0].speaker) == hyp[0].speaker
    assert len(set(mapping.values())) == 4
    assert t.duration == pytest.approx(turns[-1].end + 0.6, abs=0.01)
    assert len(t.words) == len(turns) and all(w.speaker for w in t.words)
    assert t.segments and all(s.speaker for s in t.segments)
    assert not any(Path(tmp_path / "w" / "audio").iterdir())  # chunk audio dropped once processed


def test_pool_gives_the_same_transcript_as_inline(tone_file, tmp_path):
    path, _ = tone_file
    inline = transcribe_long(path, OPTIONS, chunk_s=20, processor=fakes.fake_process_chunk)
    pooled = transcribe_long(path, OPTIONS, chunk_s=20, workers=2, processor=fakes.fake_process_chunk)
    assert _comparable(pooled) == _comparable(inline)


def test_workers_replaced_every_n_chunks_give_the_same_transcript(tone_file, tmp_path):
    path, _ = tone_file
    inline = transcribe_long(path, OPTIONS, chunk_s=20, processor=fakes.fake_process_chunk)
    ran_in: dict[int, str] = {}
    recycled = transcribe_long(path, OPTIONS, chunk_s=20, processor=fakes.pid_process_chunk, chunks_per_worker=1,
                               on_chunk=lambda chunk, result: ran_in.__setitem__(chunk.index, result.models["asr"]))
    assert {**_comparable(recycled), "models": None} == {**_comparable(inline), "models": None}
    assert len(ran_in) >= 3 and len(set(ran_in.values())) == len(ran_in)  # a fresh process for every chunk
    assert f"pid{os.getpid()}" not in ran_in.values()
    ran_in.clear()
    transcribe_long(path, OPTIONS, chunk_s=20, processor=fakes.pid_process_chunk, chunks_per_worker=2,
                    on_chunk=lambda chunk, result: ran_in.__setitem__(chunk.index, result.models["asr"]))
    assert len(set(ran_in.values())) == (len(ran_in) + 1) // 2
    with pytest.raises(InvalidOptionError, match="at least 1"):
        transcribe_long(path, OPTIONS, chunk_s=20, processor=fakes.fake_process_chunk, chunks_per_worker=0)


def test_truncated_file_gives_what_was_decodable_with_a_warning(tmp_path):
    require_tools("ffmpeg")
    samples, _ = fakes.tone_recording(_lines(30))
    write_wav(tmp_path / "full.wav", samples)
    full = tmp_path / "full.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "full.wav"), "-c:a", "libmp3lame", str(full)],
                   check=True)
    cut = tmp_path / "cut.mp3"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    t = transcribe_long(cut, OPTIONS, chunk_s=15, processor=fakes.fake_process_chunk)
    assert any("ends abruptly" in w for w in t.warnings)
    assert t.duration == pytest.approx(len(samples) / SAMPLE_RATE / 2, abs=0.5)
    assert t.words and t.speakers


# --- resume ------------------------------------------------------------------------------

_RUNNER = textwrap.dedent("""
    import sys
    from saywho.longform import transcribe_long
    from saywho.types import TranscribeOptions
    from tests.longform_fakes import slow_logging_process_chunk
    transcribe_long(sys.argv[1], TranscribeOptions(language="en"), chunk_s=20, work_dir=sys.argv[2],
                    resume="--resume" in sys.argv, processor=slow_logging_process_chunk)
""")


def test_killed_run_resumes_without_redoing_finished_chunks(tone_file, tmp_path, monkeypatch):
    path, _ = tone_file
    work = tmp_path / "work"
    log = tmp_path / "log"
    env = dict(os.environ, FAKE_LOG=str(log), FAKE_SLEEP="0.5", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, str(path), str(work)], env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((work / "results").glob("*.json"))) < 3:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = DirectoryChunkStore(work)
    finished_before = store.finished()
    plan = ChunkPlan.from_dict(json.loads((work / "plan.json").read_text())["plan"])
    assert 3 <= len(finished_before) < len(plan.chunks)

    decoded = decode_audio(path).samples
    digest_of = {c.index: fakes.digest(decoded[c.start: c.end]) for c in plan.chunks}
    log.write_text("")
    monkeypatch.setenv("FAKE_LOG", str(log))
    resumed = transcribe_long(path, OPTIONS, chunk_s=20, work_dir=work, resume=True,
                              processor=fakes.slow_logging_process_chunk)
    redone = log.read_text().split()
    assert sorted(redone) == sorted(digest_of[c.index] for c in plan.chunks if c.index not in finished_before)

    log.write_text("")
    fresh = transcribe_long(path, OPTIONS, chunk_s=20, processor=fakes.slow_logging_process_chunk)
    assert len(log.read_text().split()) == len(plan.chunks)
    assert _comparable(resumed) == _comparable(fresh)


def test_resume_of_a_different_file_starts_over(tone_file, tmp_path):
    path, _ = tone_file
    work = tmp_path / "w"
    transcribe_long(path, OPTIONS, chunk_s=20, work_dir=work, processor=fakes.fake_process_chunk)
    other = tmp_path / "other.wav"
    write_wav(other, fakes.tone_recording(_lines(12, seed=3))[0])
    t = transcribe_long(other, OPTIONS, chunk_s=20, work_dir=work, resume=True, processor=fakes.fake_process_chunk)
    assert t.duration < 40
    assert len(DirectoryChunkStore(work).finished()) == len(
        ChunkPlan.from_dict(json.loads((work / "plan.json").read_text())["plan"]).chunks)


# --- Ray ---------------------------------------------------------------------------------


def test_ray_gives_the_same_transcript_as_the_pool(tone_file):
    ray = pytest.importorskip("ray")
    path, _ = tone_file
    pooled = transcribe_long(path, OPTIONS, chunk_s=20, workers=2, processor=fakes.fake_process_chunk)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        on_ray = transcribe_long(path, OPTIONS, chunk_s=20, ray_address="auto",
                                 processor=fakes.fake_process_chunk)
    finally:
        ray.shutdown()
    assert _comparable(on_ray) == _comparable(pooled)


# --- CLI -----------------------------------------------------------------------------------


def test_cli_routes_long_files_and_keeps_the_work_dir_it_was_given(tone_file, tmp_path, monkeypatch, capsys):
    from saywho.cli.app import main
    from saywho.longform import run as longform

    monkeypatch.setattr(longform, "process_chunk", fakes.fake_process_chunk)
    path, _ = tone_file
    out, work = tmp_path / "out.json", tmp_path / "work"
    rc = main(["transcribe", str(path), "--chunk-minutes", "0.34", "--work-dir", str(work), "-l", "en",
               "--no-identify", "-f", "json", "-o", str(out), "-q"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert [s["label"] for s in data["speakers"]] == [f"Speaker_{i}" for i in range(4)]
    assert len(DirectoryChunkStore(work).finished()) >= 6
    # Resuming a finished job runs nothing and gives the same result.
    monkeypatch.setattr(longform, "process_chunk", None)
    rc = main(["transcribe", str(path), "--chunk-minutes", "0.34", "--work-dir", str(work), "--resume",
               "-l", "en", "--no-identify", "-f", "json", "-o", str(tmp_path / "again.json"), "-q"])
    assert rc == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["segments"] == data["segments"]


def test_cli_help_lists_the_long_recording_options(capsys):
    from saywho.cli.app import main

    with pytest.raises(SystemExit):
        main(["transcribe", "--help"])
    text = capsys.readouterr().out
    for option in ("--chunk-minutes", "--workers", "--ray ADDRESS", "SAYWHO_RAY_ADDRESS", "--work-dir", "--resume"):
        assert option in text


def test_words_keep_the_speaker_their_chunk_gave_them():
    """A chunk's words were checked against the voices there (``verify``): the stitched
    transcript keeps their speakers rather than re-deriving them from the turns."""
    alice, bob = fakes.voice_fingerprint(220.0), fakes.voice_fingerprint(470.0)
    results = [_result({"Speaker_0": alice, "Speaker_1": bob}) for _ in range(2)]
    moved = dataclasses.replace(results[1].words[0], start=6.5, end=7.0)  # inside bob's turn, alice's voice
    results[1] = dataclasses.replace(results[1], words=(moved, results[1].words[1]))
    plan = ChunkPlan((Chunk(0, 0, 320_000), Chunk(1, 320_000, 640_000)), 40.0)
    t = stitch(plan, results, OPTIONS)
    by_start = {w.start: w.speaker for w in t.words}
    assert by_start[26.5] == by_start[1.5] == "Speaker_0"  # alice's, though bob's turn holds 26.5 s
    assert by_start[26.5] != next(x.speaker for x in t.diarization.exclusive if x.start <= 26.5 < x.end)


def test_the_process_that_plans_and_stitches_never_imports_torch():
    """Only the chunk workers load torch and the models: the parent of a long run (and the
    server's job bridge) stays about 360 MiB smaller."""
    code = ("import sys, saywho.longform.run, saywho.longform.stitch, saywho.server.job_bridge, saywho.cli.transcribe;"
            "print(sorted(m for m in ('torch', 'ctranslate2', 'faster_whisper') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
