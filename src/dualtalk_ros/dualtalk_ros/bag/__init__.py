"""Bag tools: make rosbag2 bags from DualTalk-layout clips, replay, record, repair, evaluate.

Bags are written and read with the ``rosbags`` library (the venv has no ``ros2 bag``); MCAP by
default, sqlite3 on request. The message definitions of our custom types are stored in every
bag, so other tools (Foxglove, ``ros2 bag`` on a robot) can decode it.

Command line (``dualtalk-ros bag ...``)::

    dualtalk-ros bag make DATA_ROOT --split test -o bags/            # one bag per clip-side
    dualtalk-ros bag make ../shared/dualtalk-sample -o bags/ --storage sqlite3
    dualtalk-ros bag replay bags/CLIP_speaker1 --rate 1.0 [--clock] [--remap a:=b] [--topics ..]
    dualtalk-ros bag record agent/blendshapes conversation_state -o out/ --duration 30
    dualtalk-ros bag evaluate bags/ -o reports/ --checkpoint model.pt  # graph + replay + score
    dualtalk-ros bag repair cut_bag/ -o fixed_bag/                   # truncated MCAP
    dualtalk-ros bag info bags/CLIP_speaker1

Modules: ``typestore`` (types), ``make``, ``bagio`` (reading), ``replay``, ``record``,
``salvage`` (repair), ``inputs`` + ``score`` (analysis), ``graph`` (the live graph as a
``dualtalk-ros bringup conversation --no-audio-input`` subprocess), ``evaluate`` (orchestration), ``report`` (Markdown/JSON/PNG), ``cli``.
"""
