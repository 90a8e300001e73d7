"""Offline training and evaluation of the emotion classifier (data loading, config, CLIs)."""
