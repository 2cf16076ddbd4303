"""Media: audio files, the preview renderer, plots."""
