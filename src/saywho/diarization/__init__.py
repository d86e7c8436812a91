"""Who spoke when: segmentation, fingerprints (embedding), clustering, the pipeline, words -> speakers."""
