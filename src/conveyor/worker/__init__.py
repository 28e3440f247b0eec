from conveyor.worker.worker import Worker

__all__ = ["Worker"]
