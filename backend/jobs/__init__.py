"""The job runner: a queue in the database, worker threads, stop, heartbeat, recovery."""
