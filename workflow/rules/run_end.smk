# The end of a run. Snakemake's scheduler leaves a timer behind each time it looks at the waiting
# jobs (the profiles' max-jobs-per-timespan: a minute), and Python waits for such timers before
# the process exits: cancelled here, the run ends when its last job does.
from cytotrial.rules import cancel_pending_timers


onsuccess:
    cancel_pending_timers()


onerror:
    cancel_pending_timers()
