"""`make demo`: placeholder until the full pipeline lands — runs the smallest end-to-end thing."""
import sys

from dualtalk_msgs.msg import Blendshapes
from dualtalk_core.layout import FLAME56, FLAME56_NAMES

msg = Blendshapes(rig=FLAME56, names=list(FLAME56_NAMES), weights=[0.0] * 56)
print(f"dualtalk_msgs OK: {len(msg.names)} names in rig {msg.rig}")
sys.exit(0)
