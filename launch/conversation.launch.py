"""Launch the DualTalk conversation graph on a ROS 2 install.

    ros2 launch dualtalk_ros conversation.launch.py checkpoint:=/path/model.pt
    ros2 launch dualtalk_ros conversation.launch.py checkpoint:=model.pt use_file_audio:=true \
        partner_wav:=partner.wav agent_wav:=agent.wav

Same nodes, parameters and remappings as `dualtalk-ros bringup conversation`
(dualtalk_ros.bringup.CONVERSATION_NODES; tests/test_ros_launch.py checks they agree). Parameters
come from config/conversation.yaml in the package share, then the launch arguments below.
Topic names are fixed (dualtalk_ros.topics) and renamed by remapping: the two file players
publish "audio", remapped here to partner/audio and agent/audio; to point the head at a robot
controller, add remappings=[("agent/joint_states", "/arm/cmd")] to the head_driver Node (or run
`ros2 run dualtalk_ros head_driver --ros-args -r agent/joint_states:=/arm/cmd`).
play_voice:=true adds voice_player, which plays agent/audio on the sound card at the sample
index it announces (the face and the voice on one clock).
"""
import os
import time

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    params = os.path.join(get_package_share_directory("dualtalk_ros"), "config",
                          "conversation.yaml")
    checkpoint = LaunchConfiguration("checkpoint")
    device = LaunchConfiguration("device")
    audio_device = LaunchConfiguration("audio_device")
    use_file_audio = LaunchConfiguration("use_file_audio")
    partner_wav = LaunchConfiguration("partner_wav")
    agent_wav = LaunchConfiguration("agent_wav")
    play_voice = IfCondition(LaunchConfiguration("play_voice"))
    file_audio = IfCondition(use_file_audio)
    live_audio = UnlessCondition(use_file_audio)
    # both players share one conversation clock: sample 0 plays a few seconds after launch
    origin = {"origin_stamp_s": time.time() + 3.0}
    return LaunchDescription([
        DeclareLaunchArgument("checkpoint", description="DualTalk checkpoint (.pt)"),
        DeclareLaunchArgument("device", default_value="cpu", description="torch device"),
        DeclareLaunchArgument("audio_device", default_value="",
                              description="capture device (index or name); '' = default"),
        DeclareLaunchArgument("use_file_audio", default_value="false",
                              description="play partner_wav/agent_wav instead of capturing"),
        DeclareLaunchArgument("partner_wav", default_value="", description="partner wav file"),
        DeclareLaunchArgument("agent_wav", default_value="", description="agent (TTS) wav file"),
        DeclareLaunchArgument("play_voice", default_value="false",
                              description="play agent/audio on the sound card (voice_player)"),
        Node(package="dualtalk_ros", executable="audio_capture", name="audio_capture",
             parameters=[params, {"device": audio_device}], condition=live_audio,
             output="screen"),
        Node(package="dualtalk_ros", executable="audio_file_player", name="partner_player",
             parameters=[params, origin], ros_arguments=["-p", ["wav_files:=[", partner_wav, "]"]],
             remappings=[("audio", "partner/audio")], condition=file_audio, output="screen"),
        Node(package="dualtalk_ros", executable="audio_file_player", name="agent_player",
             parameters=[params, origin], ros_arguments=["-p", ["wav_files:=[", agent_wav, "]"]],
             remappings=[("audio", "agent/audio")], condition=file_audio, output="screen"),
        Node(package="dualtalk_ros", executable="face_input_adapter", name="face_input_adapter",
             parameters=[params], output="screen"),
        Node(package="dualtalk_ros", executable="dualtalk_node", name="dualtalk_node",
             parameters=[params, {"checkpoint": checkpoint, "device": device}], output="screen"),
        Node(package="dualtalk_ros", executable="head_driver", name="head_driver",
             parameters=[params], output="screen"),
        Node(package="dualtalk_ros", executable="voice_player", name="voice_player",
             parameters=[params], condition=play_voice, output="screen"),
    ])
