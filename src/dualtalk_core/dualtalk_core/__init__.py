"""dualtalk_core: the DualTalk model, data, training, metrics and streaming engine (no ROS)."""
__version__ = "0.1.0"
