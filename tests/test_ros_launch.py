"""The launch file, the bring-up command and the installed executables describe one graph.

``launch``/``launch_ros`` are not installable in the venv, so the launch file is checked by
parsing it (ast): its Node actions must be the bring-up's node set (with the same default
remappings: the file players' ``audio`` -> partner/agent audio), every executable an
installed entry point, every parameter file it names must exist, and every parameter in
config/conversation.yaml must be one its node declares. The bring-up itself is run for a few
seconds from file audio.
"""
from __future__ import annotations

import ast
import importlib
import json
from importlib.metadata import entry_points

import pytest

from dualtalk_ros import bringup, topics
from dualtalk_ros.params import load_params_file, resolve_config_path

pytestmark = pytest.mark.ros  # starts real rclpy nodes over DDS on loopback

CLIP = "xkHwlcDSOjc_sub_video_109_000"
CONDITIONS = {"file_audio": "file_audio", "live_audio": "live_audio", "play_voice": "play_voice",
              None: "always"}


def _remappings(node) -> tuple:
    """A launch ``remappings=[("from", "to"), ...]`` keyword as a tuple of string pairs."""
    if node is None:
        return ()
    return tuple(tuple(ast.literal_eval(e)) for e in node.elts)


def _launch_nodes(path):
    tree = ast.parse(path.read_text())
    nodes, strings = [], []
    for call in ast.walk(tree):
        if isinstance(call, ast.Constant) and isinstance(call.value, str):
            strings.append(call.value)
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node":
            kw = {k.arg: k.value for k in call.keywords}
            cond = kw.get("condition")
            nodes.append((kw["package"].value, kw["executable"].value, kw["name"].value,
                          CONDITIONS[cond.id if cond is not None else None],
                          _remappings(kw.get("remappings"))))
    args = [c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
            and getattr(c.func, "id", None) == "DeclareLaunchArgument"]
    return nodes, strings, args


def test_launch_file_matches_bringup_and_entry_points(repo_root):
    nodes, strings, args = _launch_nodes(repo_root / "launch" / "conversation.launch.py")
    assert {(e, n, w, r) for _, e, n, w, r in nodes} == {
        (e.executable, e.name, e.when, e.remappings) for e in bringup.conversation_nodes()}
    remaps = {n: dict(r) for _, _, n, _, r in nodes}
    assert remaps["partner_player"] == {topics.PLAYER_AUDIO: topics.PARTNER_AUDIO}
    assert remaps["agent_player"] == {topics.PLAYER_AUDIO: topics.AGENT_AUDIO}
    assert {p for p, *_ in nodes} == {"dualtalk_ros"}
    installed = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    for _, exe, name, *_ in nodes:
        assert exe in installed, f"launch node {name}: executable {exe!r} is not installed"
        module, func = installed[exe].split(":")
        assert callable(getattr(importlib.import_module(module), func))
    for entry in bringup.conversation_nodes():   # the bring-up class is the executable's class
        assert installed[entry.executable].split(":")[0] == f"dualtalk_ros.{entry.module}"
        assert entry.load().__module__ == f"dualtalk_ros.{entry.module}"
    assert {"checkpoint", "device", "audio_device", "use_file_audio", "partner_wav",
            "agent_wav"} <= set(args)
    yaml_files = [s for s in strings if s.endswith(".yaml")]
    assert yaml_files, "the launch file names no parameter file"
    for name in yaml_files:
        assert (repo_root / "config" / name).is_file(), f"launch names missing config/{name}"


def test_conversation_params_are_declared_by_their_nodes(repo_root):
    per_node = load_params_file(repo_root / "config" / "conversation.yaml")
    entries = {e.name: e for e in bringup.conversation_nodes()}
    assert set(per_node) <= set(entries), f"unknown node sections {set(per_node) - set(entries)}"
    for node_name, values in per_node.items():
        module = importlib.import_module(f"dualtalk_ros.{entries[node_name].module}")
        declared = {p.name for p in module.PARAMS}
        assert set(values) <= declared, f"{node_name}: undeclared {set(values) - declared}"
        for key in ("map_file", "joint_map_file", "rig_map_file", "partner_face_map_file"):
            if values.get(key):
                assert resolve_config_path(values[key]).is_file()


def test_bringup_remap_rules_user_first_then_defaults():
    """ROS applies the first matching rule: a user's --remap must come before the defaults."""
    entries = bringup.conversation_nodes(True)
    rules = bringup.remap_rules(["partner_player:audio:=/robot/mic",
                                 "head_driver:agent/joint_states:=/arm/cmd"], entries)
    assert rules["partner_player"] == [("audio", "/robot/mic"),
                                       (topics.PLAYER_AUDIO, topics.PARTNER_AUDIO)]
    assert rules["agent_player"] == [(topics.PLAYER_AUDIO, topics.AGENT_AUDIO)]
    assert rules["head_driver"] == [(topics.AGENT_JOINT_STATES, "/arm/cmd")]
    assert bringup.remapped(topics.AGENT_BLENDSHAPES, [("/agent/blendshapes", "face")]) == "face"
    assert bringup.remapped(topics.AGENT_BLENDSHAPES, rules["head_driver"]) == \
        topics.AGENT_BLENDSHAPES
    for bad in ("nobody:a:=b", "head_driver:a=b", "head_driver::=b"):
        with pytest.raises(ValueError, match="NODE:FROM:=TO"):
            bringup.remap_rules([bad], entries)


def test_bringup_overrides(repo_root):
    parser_args = type("A", (), dict(
        params=str(repo_root / "config" / "conversation.yaml"), checkpoint="x.pt", device="cuda",
        audio_device="2", partner_wav="p.wav", agent_wav=None,
        overrides=["dualtalk_node.hop_s=0.4", "head_driver.rig_map_file="]))
    params = bringup.node_parameters(parser_args)
    assert params["dualtalk_node"]["checkpoint"] == "x.pt"
    assert params["dualtalk_node"]["device"] == "cuda" and params["dualtalk_node"]["hop_s"] == 0.4
    assert params["audio_capture"]["device"] == "2"
    assert params["partner_player"]["wav_files"] == ["p.wav"]
    assert params["head_driver"]["rig_map_file"] == ""
    parser_args.overrides = ["nobody.x=1"]
    with pytest.raises(ValueError, match="unknown node"):
        bringup.node_parameters(parser_args)


def test_bringup_runs_the_graph_from_file_audio(tmp_path, tiny_checkpoint, sample_dir):
    from dualtalk_ros.cli import main

    report = tmp_path / "report.json"
    code = main(["bringup", "conversation", "--checkpoint", str(tiny_checkpoint),
                 "--use-file-audio", "--partner-wav", str(sample_dir / f"{CLIP}_speaker1.wav"),
                 "--agent-wav", str(sample_dir / f"{CLIP}_speaker2.wav"),
                 "--set", "partner_player.start_delay_s=0.3", "--duration", "6",
                 "--report", str(report)])
    assert code == 0
    data = json.loads(report.read_text())
    assert data["nodes"] == [e.name for e in bringup.conversation_nodes(True)]
    assert data["frames"] > 0 and data["dualtalk_node"]["frames_published"] >= data["frames"]
    assert data["cpu_s"] > 0
    node = data["dualtalk_node"]      # file audio is stamped on the ROS clock: both measurable
    assert 0 < node["processing_latency_ms_p50"] < node["end_to_end_latency_ms_p50"]
    assert data["latency_plausible"] is True


def test_bringup_makes_openmp_threads_passive_unless_set():
    """Run as a fresh process (torch not yet loaded): PASSIVE by default, a user's choice kept."""
    import os
    import subprocess
    import sys

    code = ("import os; from dualtalk_ros.bringup import quiet_openmp_threads; "
            "quiet_openmp_threads(); import torch; print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for preset, want in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        run_env = dict(env, **({"OMP_WAIT_POLICY": preset} if preset else {}))
        out = subprocess.run([sys.executable, "-c", code], env=run_env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == want


@pytest.mark.timeout(180)
@pytest.mark.parametrize("exe", ["head_driver", "dualtalk_node"])
def test_executables_stop_cleanly_on_ctrl_c(exe, request):
    """Ctrl-C (SIGINT) ends an executable with status 0 and no traceback."""
    import signal
    import subprocess

    from ros_helpers import entry_point, ros_env

    args = [entry_point(exe), "--ros-args"]
    ready = "head_driver: joints"
    if exe == "dualtalk_node":
        args += ["-p", f"checkpoint:={request.getfixturevalue('tiny_checkpoint')}"]
        ready = "DualTalk model from"
    proc = subprocess.Popen(args, env=ros_env(RCUTILS_LOGGING_BUFFERED_STREAM="0"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:           # wait until the node is up
            lines.append(line)
            if ready in line:
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(lines) + out
    assert proc.returncode == 0, log
    assert "Traceback" not in log, log
