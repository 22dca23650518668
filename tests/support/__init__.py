"""Helpers the tests share (not fixtures: those live in the conftest.py of each tier)."""
