"""Measurement: DER, JER, WER, cpWER, datasets, reports, and synthetic test speech."""
