"""The workspace builds with colcon, as on a real ROS 2 Jazzy/Kilted install.

``make setup`` installs the packages into the venv with CMake and ``pip install -e``; robots use
``colcon build`` instead (README, "colcon" section). This test runs colcon (from the venv, against
the venv's Kilted wheels as the underlay) on ``src/`` into a temporary workspace and checks what
``ros2 run`` / ``ros2 launch`` rely on: node executables in ``lib/dualtalk_ros``, the launch file
and every YAML (``config/maps/`` too) in the package share, ament index entries, and that
``dualtalk_msgs`` imports and (de)serialises from the colcon install after sourcing it.

One full build (``dualtalk_msgs`` is the slow part), then a ``--symlink-install`` build of the two
Python packages on top of it, which must not write outside its build/install/log folders.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
PACKAGES = ("dualtalk_core", "dualtalk_msgs", "dualtalk_ros")
NODES = ("audio_capture", "audio_file_player", "dualtalk_node", "head_driver",
         "face_input_adapter", "voice_player")
COLCON = [sys.executable, "-c",
          "import sys; from colcon_core.command import main; sys.exit(main())"]


def _env() -> dict[str, str]:
    """The venv is the underlay (its share/ and lib/cmake hold the Kilted wheels' packages)."""
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(VENV),
        AMENT_PREFIX_PATH=str(VENV),
        CMAKE_PREFIX_PATH=str(VENV),
        PYTHONDONTWRITEBYTECODE="1",
    )
    for var in ("COLCON_PREFIX_PATH", "PYTHONPATH"):
        env.pop(var, None)
    return env


def _colcon_build(ws: Path, *extra: str, source: Path | None = None) -> None:
    """``colcon build`` of src/ into ws/{build,install,log}; fails the test with colcon's tail."""
    args = [*COLCON, "--log-base", "log", "build", "--base-paths", str(REPO / "src"),
            "--build-base", "build", "--install-base", "install", *extra,
            "--cmake-args", f"-DCMAKE_PREFIX_PATH={VENV}",
            f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"]
    env = _env()
    env["COLCON_HOME"] = str(ws / "build" / "colcon-home")     # no user-level colcon defaults
    if source is not None:                     # underlay: an earlier colcon install
        cmd = ". \"$1\" && shift && exec \"$@\""
        args = ["sh", "-c", cmd, "sh", str(source / "setup.sh"), *args]
    proc = subprocess.run(args, cwd=ws, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"colcon build {' '.join(extra)} in {ws} exited {proc.returncode}:\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


def _in_sourced_install(install: Path, code: str, cwd: Path) -> dict:
    """Run Python code in a shell that sourced ``install/setup.sh``; the code prints JSON."""
    env = _env()
    script = f". \"{install}/setup.sh\" && exec \"{sys.executable}\" -c \"$1\""
    proc = subprocess.run(["sh", "-c", script, "sh", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"python in the sourced {install} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_manifests_parse_cleanly_with_catkin_pkg():
    """catkin_pkg is the parser colcon-ros, rosdep and bloom use: no warnings, right build types."""
    from catkin_pkg.package import parse_package

    build_types = {"dualtalk_core": "ament_python", "dualtalk_msgs": "ament_cmake",
                   "dualtalk_ros": "ament_python"}
    for name, build_type in build_types.items():
        warnings: list[str] = []
        pkg = parse_package(str(REPO / "src" / name / "package.xml"), warnings=warnings)
        pkg.validate(warnings=warnings)
        assert warnings == [], f"src/{name}/package.xml: {warnings}"
        assert pkg.package_format == 3 and pkg.name == name
        assert pkg.get_build_type() == build_type, (name, pkg.get_build_type())
    ros = parse_package(str(REPO / "src/dualtalk_ros/package.xml"))
    assert {"dualtalk_msgs", "dualtalk_core", "rclpy"} <= {d.name for d in ros.exec_depends}


@pytest.fixture(scope="module")
def colcon_ws(tmp_path_factory) -> Path:
    """A workspace with all three packages built by colcon (isolated install layout)."""
    pytest.importorskip("colcon_core", reason="colcon is not installed (requirements/dev.txt "
                        "has it; run make setup)")
    ws = tmp_path_factory.mktemp("colcon_ws")
    _colcon_build(ws)
    return ws


@pytest.mark.slow
def test_install_tree_has_what_ros2_run_and_launch_need(colcon_ws):
    install = colcon_ws / "install"
    for pkg in PACKAGES:
        index = install / pkg / "share/ament_index/resource_index/packages" / pkg
        assert index.is_file(), f"ament index entry missing: {index}"
        assert (install / pkg / "share" / pkg / "package.xml").is_file()
    lib = install / "dualtalk_ros/lib/dualtalk_ros"
    for node in NODES:
        exe = lib / node
        assert exe.is_file() and os.access(exe, os.X_OK), f"node executable missing: {exe}"
        assert exe.read_text().startswith(f"#!{VENV}"), f"{exe} does not run the venv's Python"
    share = install / "dualtalk_ros/share/dualtalk_ros"
    assert (share / "launch/conversation.launch.py").read_bytes() == \
        (REPO / "launch/conversation.launch.py").read_bytes()
    repo_yaml = sorted(p.relative_to(REPO / "config") for p in (REPO / "config").rglob("*.yaml"))
    got_yaml = sorted(p.relative_to(share / "config") for p in (share / "config").rglob("*.yaml"))
    assert got_yaml == repo_yaml, f"config/ installed as {got_yaml}, repository has {repo_yaml}"
    assert (share / "config/maps/arkit_to_flame56.yaml").is_file()
    # the build writes nowhere but its own folders
    assert sorted(os.listdir(colcon_ws)) == ["build", "install", "log"], os.listdir(colcon_ws)


@pytest.mark.slow
def test_sourced_install_provides_messages_packages_and_configs(colcon_ws, tmp_path):
    install = colcon_ws / "install"
    got = _in_sourced_install(install, """
        import json, dualtalk_msgs
        from dualtalk_msgs.msg import Blendshapes, BlendshapeSequence, AudioChunk, ConversationState
        from rclpy.serialization import deserialize_message, serialize_message
        from ament_index_python.packages import get_package_share_directory
        import dualtalk_ros.params as params
        msg = Blendshapes(rig="flame56", weights=[0.25] * 56)
        back = deserialize_message(serialize_message(msg), Blendshapes)
        libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if "libdualtalk_msgs" in l})
        print(json.dumps({
            "msgs_file": dualtalk_msgs.__file__,
            "rig": back.rig, "weights": list(back.weights),
            "libs": libs,
            "share": {p: get_package_share_directory(p) for p in
                      ("dualtalk_core", "dualtalk_msgs", "dualtalk_ros")},
            "params_file": params.__file__,
            "map": str(params.resolve_config_path("maps/arkit_to_flame56.yaml")),
        }))
    """, cwd=tmp_path)
    assert got["msgs_file"].startswith(str(install / "dualtalk_msgs")), got["msgs_file"]
    assert got["rig"] == "flame56" and got["weights"] == [0.25] * 56
    assert got["libs"] and all(lib.startswith(str(install)) for lib in got["libs"]), got["libs"]
    for pkg, share in got["share"].items():
        assert share == str(install / pkg / "share" / pkg), (pkg, share)
    assert got["params_file"].startswith(str(install / "dualtalk_ros")), got["params_file"]
    assert got["map"] == str(install / "dualtalk_ros/share/dualtalk_ros/config/maps"
                             / "arkit_to_flame56.yaml")


@pytest.mark.slow
def test_installed_cli_entry_point_runs(colcon_ws, tmp_path):
    """``ros2 run`` executes lib/dualtalk_ros/<name>; the CLI script there must start."""
    install = colcon_ws / "install"
    exe = install / "dualtalk_ros/lib/dualtalk_ros/dualtalk-ros"
    cmd = f". \"{install}/setup.sh\" && exec \"{exe}\" --help"
    proc = subprocess.run(["sh", "-c", cmd], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage" in proc.stdout.lower()


@pytest.mark.slow
def test_symlink_install_links_into_the_repository_and_stays_in_its_folders(colcon_ws,
                                                                           tmp_path_factory):
    ws = tmp_path_factory.mktemp("colcon_ws_symlink")
    _colcon_build(ws, "--symlink-install", "--packages-select", "dualtalk_core", "dualtalk_ros",
                  source=colcon_ws / "install")
    assert sorted(os.listdir(ws)) == ["build", "install", "log"], \
        f"--symlink-install wrote outside build/install/log: {sorted(os.listdir(ws))}"
    share = ws / "install/dualtalk_ros/share/dualtalk_ros"
    for rel in ("launch/conversation.launch.py", "config/conversation.yaml",
                "config/maps/flame56_to_arkit52.yaml"):
        installed = share / rel
        assert installed.is_symlink(), f"{installed} is not a symlink"
        assert installed.resolve() == (REPO / rel).resolve(), \
            f"{installed} -> {installed.resolve()}, expected the repository's {rel}"
    for node in NODES:
        assert (ws / "install/dualtalk_ros/lib/dualtalk_ros" / node).is_file()
