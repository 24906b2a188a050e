"""Schedules and sensors, one module per concern; this package collects them for definitions.py."""
