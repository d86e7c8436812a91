"""Speech to text: faster-whisper -> typed Words and Segments."""
