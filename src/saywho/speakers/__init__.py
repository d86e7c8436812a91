"""The library of named voices (SQLite) and identification of diarized speakers."""
