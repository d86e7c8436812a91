"""Metrics pinned on hand-made references whose scores can be worked out by hand."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("pyannote.metrics")
pytest.importorskip("jiwer")

from saywho.errors import InvalidOptionError
from saywho.evaluation.metrics import (
    cpwer,
    der,
    jer,
    normalize_english,
    pool_cpwer,
    pool_der,
    pool_jer,
    pool_wer,
    read_rttm,
    read_uem,
    speaker_count_error,
    wer,
)
from saywho.types import SpeakerTurn as T

# Two speakers taking turns, then talking over each other from 15 to 17 s.
REFERENCE = [T(0.0, 10.0, "alice"), T(10.0, 17.0, "bob"), T(15.0, 20.0, "alice")]
REFERENCE_SPEECH = 10.0 + 7.0 + 5.0  # overlap counts once per speaker


# --- DER -----------------------------------------------------------------------------------


def test_perfect_hypothesis_scores_zero():
    result = der(REFERENCE, REFERENCE, uem=(0.0, 20.0))
    assert result.der == 0.0
    assert (result.missed, result.false_alarm, result.confusion) == (0.0, 0.0, 0.0)
    assert result.total == pytest.approx(REFERENCE_SPEECH)
    assert jer(REFERENCE, REFERENCE, uem=(0.0, 20.0)).jer == 0.0


def test_swapped_labels_score_zero_after_mapping():
    rename = {"alice": "SPEAKER_01", "bob": "SPEAKER_00"}
    hypothesis = [T(t.start, t.end, rename[t.speaker]) for t in REFERENCE]
    result = der(REFERENCE, hypothesis, uem=(0.0, 20.0))
    assert result.der == 0.0
    assert dict(result.mapping) == {"SPEAKER_01": "alice", "SPEAKER_00": "bob"}
    assert jer(REFERENCE, hypothesis).jer == 0.0


def test_known_miss_false_alarm_and_confusion():
    # The overlapped bob (15-17) is missed; everything else is right.
    exclusive = [T(0.0, 10.0, "a"), T(10.0, 15.0, "b"), T(15.0, 20.0, "a")]
    result = der(REFERENCE, exclusive, uem=(0.0, 20.0))
    assert result.missed == pytest.approx(2.0)
    assert result.false_alarm == 0.0 and result.confusion == 0.0
    assert result.der == pytest.approx(2.0 / REFERENCE_SPEECH)
    assert result.missed_rate == pytest.approx(result.der)

    # One speaker for the whole recording, mapped to alice: bob alone (10-15) is
    # confused, bob under alice (15-17) is missed.
    single = der(REFERENCE, [T(0.0, 20.0, "x")], uem=(0.0, 20.0))
    assert (single.confusion, single.missed, single.false_alarm) == pytest.approx((5.0, 2.0, 0.0))

    # Speech where nobody spoke (20-22, inside the UEM) is false alarm.
    extra = [*REFERENCE, T(20.0, 22.0, "bob")]
    result = der(REFERENCE, extra, uem=(0.0, 22.0))
    assert result.false_alarm == pytest.approx(2.0)
    assert result.der == pytest.approx(2.0 / REFERENCE_SPEECH)


def test_uem_limits_the_scored_region():
    hypothesis = [*REFERENCE, T(25.0, 30.0, "alice")]
    assert der(REFERENCE, hypothesis, uem=(0.0, 20.0)).der == 0.0
    assert der(REFERENCE, hypothesis, uem=[(0.0, 10.0), (10.0, 20.0)]).der == 0.0
    # No UEM: the extent of both lists is scored, so the extra turn is false alarm.
    assert der(REFERENCE, hypothesis).false_alarm == pytest.approx(5.0)


def test_collar_is_md_eval_convention_each_side():
    ref = [T(0.0, 10.0, "a"), T(10.0, 20.0, "b")]
    hyp = [T(0.0, 10.2, "a"), T(10.2, 20.0, "b")]  # change point 0.2 s late
    strict = der(ref, hyp, uem=(0.0, 20.0))
    assert strict.confusion == pytest.approx(0.2)
    assert strict.total == pytest.approx(20.0)

    # 0.25 s on each side of each reference boundary (0, 10, 10, 20) is unscored:
    # the 0.2 s error falls inside it, and 0.25 + 0.5 + 0.25 s leave the total.
    md_eval = der(ref, hyp, uem=(0.0, 20.0), collar=0.25)
    assert md_eval.der == 0.0
    assert md_eval.total == pytest.approx(19.0)

    # Same figure as pyannote.metrics with collar=0.5 (its collar is the total width)...
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(turns):
        a = Annotation()
        for i, t in enumerate(turns):
            a[Segment(t.start, t.end), i] = t.speaker
        return a

    uem = Timeline([Segment(0.0, 20.0)])
    ref_a, hyp_a = annotation(ref), annotation(hyp)
    assert DiarizationErrorRate(collar=0.5)(ref_a, hyp_a, uem=uem) == pytest.approx(md_eval.der)
    # ...and not pyannote's collar=0.25, which leaves only 0.125 s each side.
    narrow = DiarizationErrorRate(collar=0.25)(ref_a, hyp_a, uem=uem, detailed=True)
    assert narrow["confusion"] == pytest.approx(0.2 - 0.125)


def test_pool_der_sums_seconds():
    a = der([T(0, 10, "a")], [T(0, 5, "x")], uem=(0, 10))  # 5 of 10 missed
    b = der([T(0, 30, "a")], [T(0, 30, "x")], uem=(0, 30))  # perfect
    pooled = pool_der([a, b])
    assert pooled.total == pytest.approx(40.0)
    assert pooled.der == pytest.approx(5.0 / 40.0)  # not the mean of 0.5 and 0


def test_empty_inputs():
    assert der([], [], uem=None).der == 0.0
    assert der([T(0, 4, "a")], [], uem=(0, 4)).der == 1.0
    assert der([], [T(0, 4, "a")], uem=(0, 4)).der == 1.0  # nothing to score but an error
    with pytest.raises(InvalidOptionError):
        der(REFERENCE, REFERENCE, collar=-1.0)


# --- JER and speaker count -----------------------------------------------------------------


def test_jer_known_value():
    ref = [T(0, 10, "a"), T(10, 20, "b")]
    hyp = [T(0, 10, "x")]  # a perfect, b entirely missed
    result = jer(ref, hyp, uem=(0, 20))
    assert result.speaker_count == 2
    assert result.jer == pytest.approx(0.5)
    assert pool_jer([result, jer(ref, ref)]).jer == pytest.approx(0.25)


def test_speaker_count_error():
    assert speaker_count_error(REFERENCE, REFERENCE) == 0
    assert speaker_count_error(REFERENCE, [T(0, 20, "x")]) == -1
    three = [*REFERENCE, T(30, 31, "carol")]
    assert speaker_count_error(REFERENCE, three) == 1
    assert speaker_count_error(REFERENCE, three, uem=(0, 20)) == 0


# --- reference files -----------------------------------------------------------------------


def test_read_rttm_and_uem(tmp_path):
    rttm = tmp_path / "x.rttm"
    rttm.write_text(
        ";; comment\n"
        "SPEAKER rec2 1 1.5 2.0 <NA> <NA> s1 <NA> <NA>\n"
        "SPEAKER rec1 1 3.0 1.0 <NA> <NA> s2 <NA> <NA>\n"
        "SPKR-INFO rec1 1 <NA> <NA> <NA> unknown s2 <NA> <NA>\n"
        "SPEAKER rec1 1 0.0 2.5 <NA> <NA> s1 <NA> <NA>\n"
    )
    turns = read_rttm(rttm)
    assert turns == {
        "rec2": [T(1.5, 3.5, "s1")],
        "rec1": [T(0.0, 2.5, "s1"), T(3.0, 4.0, "s2")],
    }
    uem = tmp_path / "x.uem"
    uem.write_text("rec1 NA 0.000 30.000\nrec1 1 40 50\n")
    assert read_uem(uem) == {"rec1": [(0.0, 30.0), (40.0, 50.0)]}

    rttm.write_text("SPEAKER rec1 1 zero 2.5 <NA> <NA> s1\n")
    with pytest.raises(InvalidOptionError, match=r"x\.rttm:1"):
        read_rttm(rttm)
    with pytest.raises(InvalidOptionError):
        read_uem(tmp_path / "missing.uem")


# --- WER and the normaliser ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("Mr. Smith's twenty-five colours", "mister smith is 25 colors"),
        ("He won't go; they're late, I'd been there.", "he will not go they are late i had been there"),
        ("It cost two thousand and five dollars and twenty cents", "it cost $2005.20"),
        ("ten per cent of one hundred and twenty", "10% of 120"),
        ("the twenty first century, nineteen eighty four", "the 21st century 1984"),
        ("three and a half hours", "3.5 hours"),
        ("one more, 1,000 people", "one more 1000 people"),
        ("[noise] (laughs) um, uh hmm okay", "okay"),
        ("Café naïve", "cafe naive"),
        ("I'm gonna wanna", "i am going to want to"),
        ("DISHONOURED BOSOM", "dishonored bosom"),
    ],
)
def test_normalize_english(text, expected):
    assert normalize_english(text) == expected


def test_normaliser_matches_whisper():
    """Same output as Whisper's EnglishTextNormalizer (the whisper-normalizer package)."""
    english = pytest.importorskip("whisper_normalizer.english")
    reference = english.EnglishTextNormalizer()
    sentences = [
        "And so my fellow Americans, ask not what your country can do for you.",
        "Call double oh seven at one two three, minus forty degrees, three and a half hours",
        "The 1990s were great, 21st of May, 3 million people, two millionth visitor",
        "Ten per cent of the organisation's behaviour [noise] (laughs) <unk> hmm uh",
        "five pounds fifty, a euro, twenty twenty, sixty fourth, ninety nineties, hundreds of thousands",
        "two point o five, point five, 3.14 and one point 5, zero",
        "Dr. Who met St. John, Jr. on the 4th; y'all ma'am let's",
        "seven hundred thousand three hundred and twelve, twelve thousand, a hundred",
        "$5 and 20 cents, £3.50, 50%, 0.5, fifteen hundred, nineteen oh five, twelfth, sixes",
        "plus five minus, negative numbers and positive two",
    ]
    for sentence in sentences:
        assert normalize_english(sentence) == " ".join(reference(sentence).split()), sentence


def test_wer_known_values():
    assert wer("Hello, world.", "hello world").wer == 0.0
    result = wer("the cat sat on the mat", "the cat sat on a mat today")
    assert (result.substitutions, result.deletions, result.insertions) == (1, 0, 1)
    assert result.reference_words == 6
    assert result.wer == pytest.approx(2 / 6)
    assert wer("Twenty five", "25").wer == 0.0
    assert wer("Twenty five", "25", normalize=False).wer == 1.0
    assert wer("hello there", "").deletions == 2
    assert normalize_english("one two") == "12"  # Whisper reads digit runs as one number
    assert wer("", "hello").wer == 1.0
    assert wer("", "").wer == 0.0
    pooled = pool_wer([wer("a b c d", "a b c"), wer("e f g h i j k l m n o p", "e f g h i j k l m n o p")])
    assert pooled.wer == pytest.approx(1 / 16)


# --- cpWER ---------------------------------------------------------------------------------


def test_cpwer_perfect_and_swapped_speakers():
    ref = {"alice": "good morning everyone", "bob": "hi alice how are you"}
    hyp = {"SPEAKER_00": "hi alice how are you", "SPEAKER_01": "Good morning, everyone."}
    result = cpwer(ref, hyp)
    assert result.cpwer == 0.0
    assert set(result.assignment) == {("alice", "SPEAKER_01"), ("bob", "SPEAKER_00")}


def test_cpwer_known_value():
    # Best pairing: A-y (1 deletion), B-x (1 insertion); z has no partner (1 insertion).
    result = cpwer({"A": "a b c", "B": "d e"}, {"x": "d e f", "y": "a b", "z": "q"})
    assert (result.substitutions, result.deletions, result.insertions) == (0, 1, 2)
    assert result.reference_words == 5
    assert result.cpwer == pytest.approx(3 / 5)
    assert result.false_alarm_speakers == 1 and result.missed_speakers == 0
    # A missed speaker: all its words are deletions.
    missed = cpwer({"A": "a b", "B": "c d e"}, {"x": "a b"})
    assert missed.deletions == 3 and missed.missed_speakers == 1
    assert pool_cpwer([result, missed]).cpwer == pytest.approx((3 + 3) / 10)


def test_cpwer_matches_meeteval():
    meeteval_wer = pytest.importorskip("meeteval.wer")
    rng = random.Random(7)
    vocabulary = ["a", "b", "c", "d", "e", "f", "g", "h"]

    def text() -> str:
        return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 12)))

    for _ in range(40):
        ref = {f"r{i}": text() for i in range(rng.randint(1, 4))}
        hyp = {f"h{i}": text() for i in range(rng.randint(1, 4))}
        ours = cpwer(ref, hyp, normalize=False)
        theirs = meeteval_wer.cp_word_error_rate(reference=ref, hypothesis=hyp)
        assert ours.errors == theirs.errors, (ref, hyp)
        assert ours.reference_words == theirs.length
        assert ours.missed_speakers == theirs.missed_speaker
        assert ours.false_alarm_speakers == theirs.falarm_speaker
