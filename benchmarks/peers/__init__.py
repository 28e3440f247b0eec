"""compare.py's side of the benchmark: the libraries measured against conveyor, one adapter each.

Every adapter module has the same small interface (see `base`), is run by `driver` in its own
interpreter (the project venv for conveyor, a peers venv for the others; see `install`), and
uses the job bodies in `jobs`, so every library is timed and detected the same way.
"""
