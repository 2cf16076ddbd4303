"""Bag tools: make rosbag2 bags from DualTalk-layout clips, replay them, record and evaluate.

Bags are written and read with the ``rosbags`` library (no ``ros2 bag`` in the venv); the
message definitions of our custom types are stored in every bag so other tools can read it.
Sub-modules: ``typestore`` (types), ``make``, ``replay``, ``record``, ``evaluate``, ``report``,
``cli`` (the ``dualtalk-ros bag`` sub-command).
"""
