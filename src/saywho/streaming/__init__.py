"""Live sessions: PCM chunks in, who-said-what events out (VAD, incremental ASR, online speakers).

``LiveSession`` is the engine; the realtime socket (``server/routers/realtime.py``) and
``saywho live`` are thin layers over it.
"""

from saywho.streaming.engine import LiveOptions, LiveSession
from saywho.streaming.events import (
    Committed,
    Completed,
    Delta,
    LiveEvent,
    SpeakerSegment,
    SpeechStarted,
    SpeechStopped,
)

__all__ = ["Committed", "Completed", "Delta", "LiveEvent", "LiveOptions", "LiveSession", "SpeakerSegment",
           "SpeechStarted", "SpeechStopped"]
