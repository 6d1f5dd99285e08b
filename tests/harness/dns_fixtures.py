"""Fixtures: placeholder until the harness lands."""
