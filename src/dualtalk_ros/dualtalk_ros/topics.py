"""Every topic name of the conversation graph, in one place.

Nodes create their publishers and subscriptions with these names (relative, so a node
namespace applies); to rename one, use ROS remapping, not a parameter:
``ros2 run dualtalk_ros head_driver --ros-args -r agent/joint_states:=/arm/cmd``, a launch
``Node(remappings=[...])``, or ``dualtalk-ros bringup ... --remap NODE:FROM:=TO``. Bag tools,
the demo and the tests read them from here too, so a renamed default is renamed everywhere.
Bags store them fully qualified (``/partner/audio``, as rosbag2 does; the bag tools accept
older bags with the relative spelling too, :mod:`dualtalk_ros.bag.bagio`), so a bag replays
onto the graph as is.

Why no ``*_topic`` parameters: remapping is the ROS way (it works for every node without code,
shows in ``ros2 node info``, and applies to services too), and one name per topic here means the
bag tools and the nodes cannot disagree.  A parameter file that still sets an old ``*_topic``
parameter is a start-up error naming the remap to use (:func:`dualtalk_ros.params.
refuse_removed_params`), never silently ignored.
"""
from __future__ import annotations

PARTNER_AUDIO = "partner/audio"              # AudioChunk: the partner's microphone
AGENT_AUDIO = "agent/audio"                  # AudioChunk: the agent's speech (playback index)
AGENT_AUDIO_PLAYED = "agent/audio_played"    # AudioChunk: what voice_player wrote, stamped
                                             # with when its first sample plays
AGENT_SPEECH_STOP = "agent/speech_stop"      # std_msgs/Empty: barge-in, drop queued speech
PARTNER_FACE_TRACKING = "partner/face_tracking"  # tracker output (ARKit blendshapes / joints)
PARTNER_HEAD = "partner/head"                # optional JointState head pose of the partner
PARTNER_FACE = "partner/face"                # Blendshapes (flame56): the partner's face
AGENT_BLENDSHAPES = "agent/blendshapes"      # Blendshapes (flame56): the agent's face, per frame
AGENT_BLENDSHAPE_SEQUENCE = "agent/blendshape_sequence"  # one message per computed hop
AGENT_JOINT_STATES = "agent/joint_states"    # JointState for a robot head (head_driver)
AGENT_BLENDSHAPES_ARKIT = "agent/blendshapes_arkit"  # Blendshapes for an ARKit avatar
CONVERSATION_STATE = "conversation_state"    # ConversationState: who speaks, per frame
AGENT_BLENDSHAPES_GT = "agent/blendshapes_gt"  # Blendshapes: ground truth, in evaluation bags
DIAGNOSTICS = "/diagnostics"                 # diagnostic_msgs/DiagnosticArray
PLAYER_AUDIO = "audio"                       # audio_file_player's output; remap per player
