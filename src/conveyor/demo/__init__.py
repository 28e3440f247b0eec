"""The demo behind `conveyor demo`: a small shop's tasks (app.py) and the run that enqueues,
watches and sums them up (run.py)."""
