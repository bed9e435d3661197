"""One training core on Accelerate (core.py) with two loop shapes (epochs.py, windows.py); run.py starts a run."""
