"""Job events pushed by the runner: the broadcaster, the event sequence, and the HTTP
stream that follows a job without polling the database."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import io
import threading

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sse_starlette")

from saywho.errors import PayloadTooLargeError
from saywho.jobs.events import JobBroadcaster, JobDeleted, follow_job
from saywho.jobs.service import save_upload
from saywho.jobs.store import FINISHED, RUNNING, JobStore
from saywho.server import streams
from saywho.server.routers import jobs as jobs_router

from .jobs_fakes import ScriptedTranscriber
from .test_jobs import add_job, make_client, settings, sse, submit, wait_for, wav  # noqa: F401 - fixtures


@pytest.fixture
def store(tmp_path) -> JobStore:
    return JobStore(tmp_path / "jobs.db", tmp_path / "uploads")


def snapshots(store, tmp_path, n: int):
    job = add_job(store, tmp_path)
    return [dataclasses.replace(job, state=RUNNING, progress=float(i)) for i in range(n)]


# ---------------------------------------------------------------------------
# The broadcaster
# ---------------------------------------------------------------------------


def test_every_subscriber_gets_every_update_in_order(store, tmp_path) -> None:
    updates = snapshots(store, tmp_path, 20)
    broadcaster = JobBroadcaster()

    async def scenario():
        subs = [broadcaster.subscribe("job_a") for _ in range(3)]
        other = broadcaster.subscribe("job_b")
        publisher = threading.Thread(target=lambda: [broadcaster.publish(u) for u in updates])
        publisher.start()
        got = [[(await s.get(timeout=5)).progress for _ in updates] for s in subs]
        publisher.join()
        assert await other.get(timeout=0.05) is None  # another job's follower hears nothing
        return got

    got = asyncio.run(scenario())
    assert got == [[u.progress for u in updates]] * 3


def test_a_slow_subscriber_is_bounded_and_holds_up_nobody(store, tmp_path) -> None:
    updates = snapshots(store, tmp_path, 100)
    broadcaster = JobBroadcaster(maxsize=4)

    async def scenario():
        fast, slow = broadcaster.subscribe("job_a"), broadcaster.subscribe("job_a")
        seen = []
        for update in updates:
            broadcaster.publish(update)
            seen.append((await fast.get(timeout=5)).progress)
        assert slow.pending == 4 and slow.dropped == 96
        kept = [(await slow.get(timeout=5)).progress for _ in range(4)]
        return seen, kept, await slow.get(timeout=0.05)

    seen, kept, after = asyncio.run(scenario())
    assert seen == [float(i) for i in range(100)]
    assert kept == [96.0, 97.0, 98.0, 99.0] and after is None  # the newest states survive


def test_leaving_unsubscribes(store, tmp_path) -> None:
    add_job(store, tmp_path)
    broadcaster = JobBroadcaster()

    async def scenario():
        with broadcaster.subscribe("job_a"):
            assert broadcaster.subscribers("job_a") == 1
        assert broadcaster.subscribers("job_a") == 0

        # A client that disconnects: sse-starlette cancels the stream while it waits.
        task = asyncio.create_task(_drain(streams.job_stream(follow_job(store, broadcaster, "job_a"))))
        await _until(lambda: broadcaster.subscribers("job_a") == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert broadcaster.subscribers("job_a") == 0

        # ...or closes it between two events.
        stream = streams.job_stream(follow_job(store, broadcaster, "job_a"))
        assert (await anext(stream)).retry == streams.RETRY_MS
        assert (await anext(stream)).event == "progress"
        assert broadcaster.subscribers("job_a") == 1
        await stream.aclose()
        assert broadcaster.subscribers("job_a") == 0
        broadcaster.publish(store.get("job_a"))  # nobody left: nothing to do

    asyncio.run(scenario())


async def _drain(stream) -> None:
    async for _ in stream:
        pass


async def _until(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


# ---------------------------------------------------------------------------
# Snapshots -> events
# ---------------------------------------------------------------------------


def test_follow_turns_snapshots_into_the_api_events(store, tmp_path) -> None:
    job = add_job(store, tmp_path)
    broadcaster = JobBroadcaster()
    running = dataclasses.replace(job, state=RUNNING, progress=10.0, step="asr", chunks_done=0, chunks_total=4)
    published = [
        running,
        dataclasses.replace(running, progress=40.0, chunks_done=2),  # two chunks in one snapshot
        dataclasses.replace(running, progress=30.0, chunks_done=2),  # never backwards
        dataclasses.replace(running, progress=100.0, state=FINISHED, chunks_done=4, step="done"),
        dataclasses.replace(running, progress=50.0),  # after the end: not read
    ]

    async def scenario():
        events = []
        async for event in follow_job(store, broadcaster, "job_a"):
            events.append(event)
            if len(events) == 1:  # the stored state came first; now the runner speaks
                threading.Thread(target=lambda: [broadcaster.publish(u) for u in published]).start()
        return events

    events = asyncio.run(scenario())
    assert [(e.name, e.data.get("progress", e.data.get("completed"))) for e in events] == [
        ("progress", 0.0), ("progress", 10.0), ("chunk", 1), ("chunk", 2), ("progress", 40.0),
        ("chunk", 3), ("chunk", 4), ("progress", 100.0), ("finished", 100.0),
    ]
    assert events[0].data["status"] == "queued" and events[1].data["chunks"] == {"completed": 0, "total": 4}


def test_a_deleted_job_ends_its_stream_as_cancelled(store, tmp_path) -> None:
    add_job(store, tmp_path)
    broadcaster = JobBroadcaster()

    async def scenario():
        events = []
        async for event in follow_job(store, broadcaster, "job_a"):
            events.append(event)
            broadcaster.publish(JobDeleted("job_a"))
        gone = [e async for e in follow_job(store, broadcaster, "job_nope")]
        return events, gone

    events, gone = asyncio.run(scenario())
    assert [e.name for e in events] == ["progress", "cancelled"]
    assert events[-1].data == {"id": "job_a", "status": "cancelled", "deleted": True}
    assert gone[0].data["deleted"] is True


# ---------------------------------------------------------------------------
# Over HTTP
# ---------------------------------------------------------------------------


def test_events_arrive_without_polling_the_store(settings, wav, monkeypatch) -> None:  # noqa: F811
    assert "asyncio.sleep" not in inspect.getsource(jobs_router)
    with make_client(settings, ScriptedTranscriber(chunk_s=5.0, delay_s=0.4)) as client:
        store = client.app.state.jobs.store
        calls: list[str] = []
        real_get = store.get

        def counting_get(job_id, **kwargs):
            calls.append(threading.current_thread().name)
            return real_get(job_id, **kwargs)

        monkeypatch.setattr(store, "get", counting_get)
        job_id = submit(client, wav).json()["id"]
        before = len(calls)
        response = client.get(f"/v1/jobs/{job_id}/events")
        streamed = [n for n in calls[before:] if not n.startswith("job-runner")]
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.text.startswith("retry: 2000\n\n")
        events = sse(response.text)
        assert events[-1][0] == "finished"
        percents = [d["progress"] for k, d in events if k == "progress"]
        assert percents == sorted(percents) and percents[-1] == 100.0 and len(percents) >= 3
        assert [d["completed"] for k, d in events if k == "chunk"] == [1, 2, 3, 4]
    # The job ran for more than 1.6 s: polling every 0.25 s would have read it 6 times or more.
    # Here: the 404 check and the stream's first state; the runner reads it twice per run.
    assert len(streamed) <= 2, calls
    assert len([n for n in calls if n.startswith("job-runner")]) <= 2, calls


def test_a_client_joining_mid_job_gets_the_state_then_live_events(settings, wav) -> None:  # noqa: F811
    gate = threading.Event()
    with make_client(settings, ScriptedTranscriber(chunk_s=5.0, delay_s=0.1, gate=gate)) as client:
        job_id = submit(client, wav).json()["id"]
        wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["chunks"]["total"] == 4)  # held at chunk 0
        broadcaster = client.app.state.jobs.events
        threading.Thread(target=lambda: (wait_for(lambda: broadcaster.subscribers(job_id) == 1), gate.set()),
                         daemon=True).start()
        events = sse(client.get(f"/v1/jobs/{job_id}/events").text)
        assert events[0][0] == "progress" and events[0][1]["status"] == "running"
        assert events[0][1]["chunks"] == {"completed": 0, "total": 4}
        assert [d["completed"] for k, d in events if k == "chunk"] == [1, 2, 3, 4]
        assert [k for k, _ in events][-1] == "finished"
        assert broadcaster.subscribers(job_id) == 0


def test_deleting_a_followed_job_ends_its_stream(settings, wav) -> None:  # noqa: F811
    gate = threading.Event()
    with make_client(settings, ScriptedTranscriber(delay_s=0.2, gate=gate)) as client:
        job_id = submit(client, wav).json()["id"]
        broadcaster = client.app.state.jobs.events
        answer: dict[str, str] = {}
        follower = threading.Thread(target=lambda: answer.update(text=client.get(f"/v1/jobs/{job_id}/events").text))
        follower.start()
        wait_for(lambda: broadcaster.subscribers(job_id) == 1)
        gate.set()
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        follower.join(10)
        events = sse(answer["text"])
        assert events[-1] == ("cancelled", {"id": job_id, "status": "cancelled", "deleted": True})
        assert broadcaster.subscribers(job_id) == 0


def test_save_upload_refuses_what_is_over_the_limit(tmp_path) -> None:
    target = tmp_path / "upload.wav"
    assert save_upload(io.BytesIO(b"x" * 10), target, max_bytes=10) == 10 and target.read_bytes() == b"x" * 10
    with pytest.raises(PayloadTooLargeError):
        save_upload(io.BytesIO(b"x" * 11), target, max_bytes=10)
    assert not target.exists()


def test_the_wire_format_is_unchanged() -> None:
    assert streams.sse(retry=2000).encode() == b"retry: 2000\n\n"
    assert streams.sse(comment="keep-alive").encode() == b": keep-alive\n\n"
    event = streams.sse({"id": "job_a", "name": "Zoë"}, event="progress", id="3").encode()
    assert event == 'id: 3\nevent: progress\ndata: {"id": "job_a", "name": "Zoë"}\n\n'.encode()
    response = streams.event_source(streams.job_stream(_no_events()))
    assert response.ping_interval == streams.HEARTBEAT_S
    assert response.ping_message_factory().encode() == b": keep-alive\n\n"


async def _no_events():
    return
    yield
