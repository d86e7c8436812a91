"""Reports of an :class:`~saywho.evaluate.EvalReport`: Markdown, JSON and PNG plots."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saywho.evaluation.evaluate import EvalReport, FileResult

if TYPE_CHECKING:
    from saywho.evaluation.metrics import DerResult

__all__ = ["render_json", "render_markdown", "write_plots"]


def _pct(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _columns(report: EvalReport) -> tuple[bool, bool, bool]:
    files = report.files
    return (
        any(f.der is not None for f in files),
        any(f.wer is not None for f in files),
        any(f.cpwer is not None for f in files),
    )


def _row(name: str, f: FileResult | EvalReport, diar: bool, words: bool, cp: bool) -> list[str]:
    cells = [name, f"{f.duration:.1f}"]
    if diar:
        d, dc = f.der, f.der_collar
        cells += [
            _pct(d.der if d else None),
            _pct(d.missed_rate if d else None),
            _pct(d.false_alarm_rate if d else None),
            _pct(d.confusion_rate if d else None),
            _pct(dc.der if dc else None),
            _pct(f.jer.jer if f.jer else None),
        ]
        if isinstance(f, FileResult):
            cells.append(
                "–" if f.reference_speakers is None else f"{f.reference_speakers} / {f.hypothesis_speakers}"
            )
        else:
            mae, exact = f.speaker_count_mae, f.speaker_count_exact
            cells.append("–" if mae is None else f"MAE {mae:.2f}, {_pct(exact)} exact")
    if words:
        cells.append(_pct(f.wer.wer if f.wer else None))
    if cp:
        cells.append(_pct(f.cpwer.cpwer if f.cpwer else None))
    cells += [f"{f.rtf:.3f}", f"{f.peak_memory_mib:.0f}"]
    return cells


def render_markdown(report: EvalReport) -> str:
    """A Markdown table: one row per file, a pooled row, and what each column means."""
    diar, words, cp = _columns(report)
    collar = f"{report.collar:g}"
    header = ["file", "audio (s)"]
    if diar:
        header += ["DER", "miss", "FA", "conf", f"DER c{collar}", "JER", "speakers ref / hyp"]
    if words:
        header.append("WER")
    if cp:
        header.append("cpWER")
    header += ["RTF", "peak MiB"]
    rows = [_row(f.uri, f, diar, words, cp) for f in report.files]
    rows.append(_row("**pooled**", report, diar, words, cp))

    lines = [f"## saywho eval: {report.dataset}", ""]
    if report.models:
        lines += ["models: " + ", ".join(f"{k} `{v}`" for k, v in sorted(report.models.items())), ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    notes = []
    if diar:
        notes += [
            (
                "DER: no collar, overlapping speech scored (the strict convention of current papers); "
                "miss + FA + conf = DER, each as a share of scored reference speech."
            ),
            (
                f"DER c{collar}: md-eval collar, {collar} s each side of every reference boundary "
                f"left unscored (pyannote.metrics collar={2 * report.collar:g}, its total width)."
            ),
            (
                "JER: Jaccard error rate (DIHARD III), no collar. Speakers: distinct labels with speech "
                "in the scored region; pooled as mean absolute error and share of files exactly right."
            ),
        ]
    if words or cp:
        notes.append(
            "WER/cpWER: both sides normalised like Whisper's English normaliser; cpWER pairs "
            "reference and hypothesis speakers to minimise errors."
        )
    notes.append(
        "Pooled rates add seconds (or words) over files before dividing. RTF: processing time / audio "
        "time (the first file includes model loading). Peak MiB: resident memory peak while a file ran."
    )
    lines += [f"- {n}" for n in notes]
    if report.unscored:
        lines.append(f"- Not scored (no reference or no audio): {', '.join(report.unscored)}")
    return "\n".join(lines) + "\n"


def _der_dict(d: DerResult | None, *, mapping: bool = False) -> dict[str, Any] | None:
    if d is None:
        return None
    out = d.as_dict()
    if mapping:
        out["mapping"] = dict(d.mapping)
    return out


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


def render_json(report: EvalReport) -> dict[str, Any]:
    """The report as JSON-ready data (NaN becomes ``null``)."""

    def file_dict(f: FileResult) -> dict[str, Any]:
        return {
            "uri": f.uri,
            "audio": str(f.audio),
            "duration_s": f.duration,
            "wall_s": round(f.wall_s, 3),
            "rtf": _finite(f.rtf),
            "peak_memory_mib": round(f.peak_memory_mib, 1),
            "der": _der_dict(f.der, mapping=True),
            "der_collar": _der_dict(f.der_collar),
            "jer": f.jer.as_dict() if f.jer else None,
            "speakers": None
            if f.reference_speakers is None
            else {
                "reference": f.reference_speakers,
                "hypothesis": f.hypothesis_speakers,
                "error": f.speaker_count_error,
            },
            "wer": f.wer.as_dict() if f.wer else None,
            "cpwer": f.cpwer.as_dict() if f.cpwer else None,
            "hypothesis_text": f.hypothesis_text,
        }

    cp = report.cpwer
    return {
        "dataset": str(report.dataset),
        "collar_s": report.collar,
        "models": dict(report.models),
        "pooled": {
            "files": len(report.files),
            "duration_s": round(report.duration, 3),
            "wall_s": round(report.wall_s, 3),
            "rtf": _finite(report.rtf),
            "peak_memory_mib": round(report.peak_memory_mib, 1),
            "der": _der_dict(report.der),
            "der_collar": _der_dict(report.der_collar),
            "jer": report.jer.as_dict() if report.jer else None,
            "speaker_count_mae": report.speaker_count_mae,
            "speaker_count_exact": report.speaker_count_exact,
            "wer": report.wer.as_dict() if report.wer else None,
            "cpwer": None if cp is None else {k: v for k, v in cp.as_dict().items() if k != "assignment"},
        },
        "files": [file_dict(f) for f in report.files],
        "unscored": list(report.unscored),
    }


# --- plots ---------------------------------------------------------------------------------


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_plots(report: EvalReport, directory: str | Path) -> list[Path]:
    """PNG plots: DER per file (stacked parts), WER per file, one timeline per diarized file.

    Needs matplotlib (the ``eval`` extra); draws with the Agg backend, no display.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    diarized = [f for f in report.files if f.der is not None]
    if diarized:
        labels = [f.uri for f in diarized] + ["pooled"]
        ders = [f.der for f in diarized] + [report.der]
        fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(labels) + 2), 4))
        bottom = [0.0] * len(labels)
        for part, colour in (
            ("missed_rate", "#d62728"),
            ("false_alarm_rate", "#ff7f0e"),
            ("confusion_rate", "#1f77b4"),
        ):
            values = [100 * getattr(d, part) for d in ders]
            ax.bar(
                labels,
                values,
                bottom=bottom,
                color=colour,
                label=part.removesuffix("_rate").replace("_", " "),
            )
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        collared = [100 * f.der_collar.der for f in diarized if f.der_collar] + (
            [100 * report.der_collar.der] if report.der_collar else []
        )
        if len(collared) == len(labels):
            ax.scatter(
                labels,
                collared,
                color="black",
                marker="_",
                s=400,
                zorder=3,
                label=f"DER, collar {report.collar:g} s",
            )
        ax.set_ylim(0, max(1.0, *bottom, *collared) * 1.35)  # room for the legend
        ax.set_ylabel("DER (%), no collar")
        ax.set_title("Diarization error per file")
        ax.legend(fontsize=8)
        ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        written.append(out / "der_per_file.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)

    worded = [f for f in report.files if f.wer is not None or f.cpwer is not None]
    if worded:
        labels = [f.uri for f in worded]
        fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(labels) + 2), 4))
        values = [100 * (f.wer.wer if f.wer else f.cpwer.cpwer if f.cpwer else 0.0) for f in worded]
        ax.bar(labels, values, color=["#2ca02c" if f.wer else "#9467bd" for f in worded])
        ax.set_ylabel("WER (%) (purple: cpWER)")
        ax.set_title("Word error per file")
        ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        written.append(out / "wer_per_file.png")
        fig.savefig(written[-1], dpi=100)
        plt.close(fig)

    for f in diarized:
        written.append(_timeline(plt, f, out / f"timeline_{_safe(f.uri)}.png"))
    return written


def _timeline(plt: Any, f: FileResult, path: Path) -> Path:
    """Reference speakers above, hypothesis speakers (renamed to their matched reference) below."""
    mapping = dict(f.der.mapping) if f.der else {}
    ref_speakers = sorted({t.speaker for t in f.reference_turns})
    hyp_speakers = sorted(
        {t.speaker for t in f.hypothesis_turns}, key=lambda s: (s not in mapping, mapping.get(s, s))
    )
    palette = plt.get_cmap("tab10")
    colour = {s: palette(i % 10) for i, s in enumerate(ref_speakers)}
    spare = len(ref_speakers)
    for s in hyp_speakers:
        if s not in mapping:
            colour[f"hyp:{s}"] = palette(spare % 10)
            spare += 1

    rows = [(f"ref {s}", s, f.reference_turns, s) for s in ref_speakers]
    rows += [
        (
            f"hyp {s}" + (f" → {mapping[s]}" if s in mapping else ""),
            s,
            f.hypothesis_turns,
            mapping.get(s, f"hyp:{s}"),
        )
        for s in hyp_speakers
    ]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.4))
    for y, (_, speaker, turns, key) in enumerate(reversed(rows)):
        spans = [(t.start, t.end - t.start) for t in turns if t.speaker == speaker]
        ax.broken_barh(spans, (y - 0.35, 0.7), color=colour[key])
    ax.axhline(len(hyp_speakers) - 0.5, color="grey", linewidth=0.8)
    for start, end in f.scored_regions:
        ax.axvspan(start, end, color="grey", alpha=0.07, linewidth=0)
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)], fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, max([f.duration] + [t.end for t in f.reference_turns]))
    title = f"{f.uri}: DER {100 * f.der.der:.1f}%" if f.der else f.uri
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
