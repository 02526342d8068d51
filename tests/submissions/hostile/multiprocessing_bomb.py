"""Hostile: starts multiprocessing workers that sleep, in an endless loop, at import."""

import multiprocessing
import time

workers = []
while True:
    worker = multiprocessing.Process(target=time.sleep, args=(600,))
    worker.start()
    workers.append(worker)
