"""Where weights come from (local dir | bundled package | hub id) and the model manager with an idle TTL."""
