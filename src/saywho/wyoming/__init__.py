"""The Wyoming protocol server for Home Assistant: speech-to-text with the speaker's name, and Piper speech."""
