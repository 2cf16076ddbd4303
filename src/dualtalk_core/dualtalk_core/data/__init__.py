"""Data: DualTalk data sets on disk, synthetic conversations, motion files."""
