"""Placeholder main job until the experiments land: a short demo of the core."""
