"""What every long-running pyresque process (worker, master, scheduler) shares with the OS:
the signal inbox, liveness checks of other processes, giving memory back, the pidfile, and the
command lines of the interpreters it starts."""
