"""The demo app behind `conveyor demo`."""
