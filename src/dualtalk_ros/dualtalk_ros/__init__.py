"""dualtalk_ros: ROS 2 nodes, bring-up and bag tools around dualtalk_core."""
__version__ = "0.1.0"
