"""The conversation bring-up without its audio-input nodes, for bag evaluation.

``dualtalk-ros bringup conversation`` always starts an audio source (the microphone capture, or
the wav players with ``--use-file-audio``); during ``bag evaluate`` the bag is the audio source,
so a capture node would fail on a machine without a sound card or, worse, add a second
``partner/audio`` stream. This runs the bring-up's own ``run`` (same parameters, same node
classes, same shutdown) with the node list narrowed to the nodes that always run
(``face_input_adapter``, ``dualtalk_node``, ``head_driver``). Arguments are those of
``dualtalk-ros bringup conversation``.

Usage: ``python -m dualtalk_ros.bag.graph_runner [--params FILE] [--set NODE.PARAM=VALUE] ...``
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from dualtalk_ros import bringup

    parser = argparse.ArgumentParser(prog="python -m dualtalk_ros.bag.graph_runner")
    sub = parser.add_subparsers(dest="command", required=True)
    bringup.register(sub)
    args = parser.parse_args(["bringup", "conversation", *(sys.argv[1:] if argv is None
                                                          else argv)])
    full = bringup.conversation_nodes

    def without_audio_input(use_file_audio=None):
        return [n for n in full(None) if n.when == "always"]

    bringup.conversation_nodes = without_audio_input
    return int(bringup.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
