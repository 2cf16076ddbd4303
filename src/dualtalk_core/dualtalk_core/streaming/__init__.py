"""Streaming inference: configuration, buffers, the engine and the live session."""
