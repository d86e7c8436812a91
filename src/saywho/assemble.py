"""Words + speaker turns -> the typed ``Transcript``: the last step of a short file
(``pipeline.transcribe``) and of a long one (``longform.stitch``). Free of the models'
libraries, so that the process stitching a long recording never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saywho.diarization.assign import assign_speakers, join_words, speaker_blocks, speech_time
from saywho.types import Diarization, Identities, SpeakerInfo, TranscribeOptions, Transcript, Word

if TYPE_CHECKING:
    from collections.abc import Sequence

    from saywho.asr.whisper import AsrResult


def model_names(options: TranscribeOptions) -> dict[str, str]:
    names = {"asr": f"faster-whisper:{options.model}"}
    if options.diarize:
        d = options.diarize_options
        names["segmentation"] = d.segmentation_model
        names["embedding"] = d.embedding_model
    return names


def assemble(
    result: AsrResult,
    diarization: Diarization | None,
    options: TranscribeOptions,
    *,
    identities: Identities | None = None,
    warnings: tuple[str, ...] = (),
    models: dict[str, str] | None = None,
    words: Sequence[Word] | None = None,
) -> Transcript:
    """Words + speaker turns -> the typed Transcript (identical for short and long files).

    ``words`` are the ASR words with their speakers already given (``verify.speaker_words``);
    without them, the words are assigned from the exclusive turns alone."""
    language = result.language
    if diarization is not None:
        words = tuple(words) if words is not None else assign_speakers(result.words, diarization.exclusive)
        segments = speaker_blocks(words, gap_s=options.block_gap_s, language=language)
        talk = speech_time(diarization.turns)
        ids = identities or {}
        speakers = tuple(
            SpeakerInfo(
                label=label,
                name=ids[label][0] if label in ids else None,
                speech_s=round(talk.get(label, 0.0), 3),
                score=round(ids[label][1], 4) if label in ids else None,
            )
            for label in diarization.speakers
        )
    else:
        words = result.words
        segments = result.segments
        speakers = ()
    text = join_words((w.text for w in words), language) if words else join_words(
        (s.text for s in result.segments), language
    )
    return Transcript(
        duration=round(result.duration, 3),
        language=language,
        text=text,
        segments=segments,
        words=words,
        speakers=speakers,
        asr_segments=result.segments,
        diarization=diarization,
        models=dict(models or model_names(options)),
        task=options.task,
        warnings=tuple(warnings),
    )
