"""Evaluation: the paper's metrics, baselines, whole-split evaluation."""
