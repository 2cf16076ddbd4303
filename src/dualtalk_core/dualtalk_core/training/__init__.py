"""Training: configuration, the loop, distributed set-up, logging, the released loss."""
