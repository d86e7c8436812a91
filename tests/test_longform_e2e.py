"""Long-recording path end to end with the real models, through the CLI."""

from __future__ import annotations

import difflib
import json
import os
import secrets
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from saywho.cli.app import main
from saywho.evaluation.metrics import der
from saywho.formats import transcript_from_dict

from .conftest import require_tools

pytestmark = pytest.mark.slow

VOICES = ["flite:slt", "piper:joe", "espeak:en-us+f3", "flite:awb"]
CHUNK_MINUTES = 0.5  # 30 s chunks


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory):
    require_tools("flite", "espeak-ng")
    from saywho.evaluation.synth import available, conversation, demo_lines

    if not available("piper:joe"):
        pytest.skip("needs piper-tts and the bundled joe voice")
    tmp = tmp_path_factory.mktemp("long")
    conv = conversation(demo_lines(VOICES, 26), gap_s=0.7)  # about 110 s, four voices
    path = conv.write(tmp / "meeting.wav")
    out = tmp / "meeting.json"
    work = tmp / "work"
    rc = main(["transcribe", str(path), "--chunk-minutes", str(CHUNK_MINUTES), "--workers", "2",
               "--work-dir", str(work), "-f", "json", "-o", str(out), "-q"])
    assert rc == 0
    return conv, transcript_from_dict(json.loads(out.read_text())), work


def test_speakers_stay_the_same_people_across_chunks(long_run):
    conv, transcript, work = long_run
    plan = json.loads((work / "plan.json").read_text())["plan"]
    assert len(plan["chunks"]) >= 3
    d = transcript.diarization
    assert d is not None
    # Every chunk-local speaker that is one voice (the chunk's own diarization got it
    # right) carries that voice's one global label, and different voices differ.
    # Chunk-level mistakes (two voices as one local speaker) are the chunk diarization's,
    # which separate short files would make too: the DER comparison below covers them.
    from saywho.longform.store import DirectoryChunkStore

    store = DirectoryChunkStore(work)
    global_of_voice: dict[str, set[str]] = {}
    for c in plan["chunks"]:
        t0 = c["start"] / 16_000
        result = store.load_result(c["index"])
        for local in result.speakers_detected:
            mine = [t for t in result.segments if t.speaker == local]
            voices, labels = Counter(), Counter()
            for t in mine:
                for ref in conv.turns:
                    voices[ref.speaker] += max(0.0, min(t.end + t0, ref.end) - max(t.start + t0, ref.start))
                for g in d.turns:
                    labels[g.speaker] += max(0.0, min(t.end + t0, g.end) - max(t.start + t0, g.start))
            voice, amount = voices.most_common(1)[0]
            if amount >= 0.9 * sum(voices.values()) and amount > 1.0:
                global_of_voice.setdefault(voice, set()).add(labels.most_common(1)[0][0])
    assert len(global_of_voice) >= 3
    assert all(len(labels) == 1 for labels in global_of_voice.values()), global_of_voice
    assert len({next(iter(v)) for v in global_of_voice.values()}) == len(global_of_voice)
    # Keeping speakers across chunks costs little against the same chunks as separate files.
    assert der(list(conv.turns), list(d.turns)).der <= _separate_files_der(conv, work) + 0.05
    # Labels in order of first appearance; the same form as a short file's transcript.
    first = list(dict.fromkeys(t.speaker for t in d.turns))
    assert first == [s.label for s in transcript.speakers] == [f"Speaker_{i}" for i in range(len(first))]
    assert transcript.words and all(w.speaker for w in transcript.words)
    assert "spreadsheet" in transcript.text.lower()
    assert transcript.duration == pytest.approx(conv.duration, abs=0.05)


def _separate_files_der(conv, work: Path) -> float:
    """Pooled DER of each chunk's own (local-label) diarization against its slice of the reference."""
    from saywho.evaluation.metrics import pool_der
    from saywho.longform.store import DirectoryChunkStore
    from saywho.types import SpeakerTurn

    plan = json.loads((work / "plan.json").read_text())["plan"]
    store = DirectoryChunkStore(work)
    results = []
    for c in plan["chunks"]:
        lo, hi = c["start"] / 16_000, c["end"] / 16_000
        ref = [SpeakerTurn(max(t.start, lo) - lo, min(t.end, hi) - lo, t.speaker)
               for t in conv.turns if t.end > lo and t.start < hi]
        results.append(der(ref, list(store.load_result(c["index"]).segments), uem=[(0.0, hi - lo)]))
    return pool_der(results).der


def test_each_stored_chunk_result_is_the_per_chunk_json(long_run):
    _, _, work = long_run
    results = sorted((work / "results").glob("*.json"))
    assert results
    for path in results:
        d = json.loads(path.read_text())
        assert {"duration", "segments", "speakers_detected", "fingerprints", "words", "models"} <= set(d)
        assert set(d["fingerprints"]) == set(d["speakers_detected"])
        assert all(abs(sum(x * x for x in v) - 1.0) < 1e-3 for v in d["fingerprints"].values())
        assert all(0 <= s["start_s"] < s["end_s"] <= d["duration"] + 1e-3 for s in d["segments"])
    assert not list((work / "audio").glob("*.npy"))


def test_process_chunk_round_trips_through_json(long_run):
    from saywho.longform.chunk import ChunkResult, chunk_options, process_chunk
    from saywho.types import TranscribeOptions

    conv, _, _ = long_run
    samples = conv.samples[: 16_000 * 12]
    result = process_chunk(samples, chunk_options(TranscribeOptions()))
    assert result.speakers_detected and result.words
    assert ChunkResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_a_ray_cluster_with_the_real_models_gives_the_pools_transcript(long_run, tmp_path):
    # The same file and settings as `long_run` (a pool of 2 workers), this time on a Ray
    # cluster started apart (`ray start --head`, 2 CPUs) and joined by address, through
    # `saywho transcribe --ray ADDRESS` in its own process: the same transcript.
    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.exists():
        pytest.skip("the ray command is not installed beside this python")
    _, pooled, work = long_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ray.json"
    # Ray 2.59+ authenticates with a token; the client needs the cluster's.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    subprocess.run([str(ray_cli), "start", "--head", "--num-cpus=2", f"--port={port}", "--node-ip-address=127.0.0.1",
                    "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True, timeout=180, env=env)
    try:
        r = subprocess.run([sys.executable, "-m", "saywho", "transcribe", str(work.parent / "meeting.wav"),
                            "--chunk-minutes", str(CHUNK_MINUTES), "--ray", f"127.0.0.1:{port}",
                            "--work-dir", str(tmp_path / "work"), "-f", "json", "-o", str(out), "-q"],
                           capture_output=True, text=True, timeout=600, env=env, check=False)
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, timeout=120, env=env, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    on_ray = transcript_from_dict(json.loads(out.read_text()))
    assert on_ray.diarization is not None and pooled.diarization is not None
    assert on_ray.diarization.turns == pooled.diarization.turns
    # The same transcript up to the recogniser's arithmetic: CTranslate2 on Ray's worker
    # runs with another thread count than the pool's, and on a close call beam search can
    # pick another word ("in" for "the"), which can nudge its neighbours' times. Words
    # matched in order: at most 3 % differ; the matched ones keep their speaker (97 %) and
    # their times (95 % within 50 ms).
    ray_words, pool_words = on_ray.words, pooled.words
    matcher = difflib.SequenceMatcher(a=[w.text for w in ray_words], b=[w.text for w in pool_words], autojunk=False)
    pairs = [(ray_words[i + k], pool_words[j + k]) for i, j, n in matcher.get_matching_blocks() for k in range(n)]
    assert len(pairs) >= 0.97 * max(len(ray_words), len(pool_words)), (on_ray.text, pooled.text)
    assert sum(a.speaker == b.speaker for a, b in pairs) >= 0.97 * len(pairs)
    close = sum(abs(a.start - b.start) <= 0.05 and abs(a.end - b.end) <= 0.05 for a, b in pairs)
    assert close >= 0.95 * len(pairs), close
