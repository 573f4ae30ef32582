"""Evaluation on the authors' Drag-a-Move test format: metrics, baselines and the report table."""
