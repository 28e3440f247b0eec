"""Placeholder until the demo lands."""


def run_demo(directory: str, job_count: int, workers: int) -> int:
    raise NotImplementedError
