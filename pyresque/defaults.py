"""Every tunable default in one place, each with the reason it has this value."""

#: Key namespace. Ruby's Redis::Namespace and php-resque both default to ``resque``.
NAMESPACE = "resque"

#: Where to find Redis when nothing is configured (the same default as php-resque and Ruby).
REDIS_URL = "redis://127.0.0.1:6379/0"

#: Seconds a finished (FAILED/COMPLETE) status packet lives: php-resque's ``EXPIRE 86400``.
STATUS_TTL = 86400

#: Seconds between polls when a worker finds no job (php-resque's ``INTERVAL`` default).
INTERVAL = 5.0

#: Seconds between heartbeats. Ruby writes every 60 s and prunes at 300 s; we beat a little
#: more often so one slow beat never brings a live worker near the expiry.
HEARTBEAT_INTERVAL = 30.0

#: Seconds after which a heartbeat counts as dead: Ruby's ``Resque.prune_interval``.
PRUNE_INTERVAL = 300.0

#: TTL of the cluster-wide prune lock (Ruby's ``SET pruning_dead_workers_in_progress NX EX 60``).
PRUNE_LOCK_TTL = 60

#: Seconds a child may take to exit after TERM before it gets KILL (Ruby's RESQUE_TERM_TIMEOUT).
TERM_TIMEOUT = 4.0

#: Version shown in process titles (``resque-<version>: …``). It must start with a digit so that
#: Ruby's pid scan ``[r]esque-[0-9]`` recognises a live pyresque worker.
PROCLINE_VERSION = "0.1.0"

#: Backoff while Redis is unreachable: first retry after this many seconds, doubling up to the cap.
OUTAGE_BACKOFF_START = 0.25
OUTAGE_BACKOFF_CAP = 5.0

#: Seconds without a job after which a worker's forking helper exits (~14 MiB RSS given back);
#: the next job then starts a new one, which costs that job 100-250 ms. 0 = never: the default,
#: so that a job starts within milliseconds however long its worker sat idle (README: Performance).
HELPER_IDLE = 0.0

#: Longest a thread slot waits (or a worker sleeps for a glob that matches no queue) before it
#: looks at its stop flag again.
MAX_BLOCK_SECONDS = 1.0

#: How many payloads one pipeline carries in ``enqueue_many``: big enough to amortise the round
#: trip, small enough to keep the client's buffers modest.
BULK_BATCH = 1000

# -- the supervising master (master.py) -------------------------------------------------------

#: A worker that dies sooner than this after it was started "died young": its replacement waits
#: (see below). One that ran longer is replaced at once and clears the group's record.
MIN_WORKER_UPTIME = 5.0

#: Delay before replacing a worker that died young: this many seconds after the first such
#: death in a row, doubling with each further one up to the cap, so a broken deploy does not
#: fork-bomb the host, and a fixed one is picked up within half a minute.
RESTART_BACKOFF_START = 0.5
RESTART_BACKOFF_CAP = 30.0

#: Young deaths in a row (per queue group) that count as a crash loop: logged as an error at
#: every further restart and shown in the master's process title until a worker lives long.
CRASH_LOOP_DEATHS = 3

#: Seconds a rolling restart (HUP) waits for every new worker to register. Past this the new
#: generation is stopped and the old one keeps serving: big applications import slowly, but a
#: worker that has not registered after a minute is stuck (Redis unreachable, a hanging import).
HANDOVER_TIMEOUT = 60.0

#: How often the master asks Redis whether the new workers have registered, during a rolling
#: restart only: it bounds the overlap of the two generations, at two cheap commands per poll.
HANDOVER_POLL = 0.05

# -- delayed jobs and the scheduler (resque-scheduler's names and values) ---------------------

#: Seconds between scheduler passes (resque-scheduler's ``RESQUE_SCHEDULER_INTERVAL``). A delayed
#: job runs at most this late; recurring ticks are checked as often.
SCHEDULER_INTERVAL = 5.0

#: TTL of the master lock (resque-scheduler's ``LOCK_TIMEOUT``): how long a dead master blocks
#: the others. Every live master refreshes it each pass, so it only matters after a crash.
SCHEDULER_LOCK_TTL = 180

#: How far ahead a cron line must match at least once to be accepted: a line that matches no
#: time (``0 0 30 2 *``, Feb 30th) would never fire, and asking croniter for its next time fails
#: on every pass. Five years covers every real line, leap days included.
CRON_HORIZON_YEARS = 5

#: Seconds between a worker's looks for due delayed jobs and retries (one ZRANGEBYSCORE when
#: none is due; the master lock and the move only when one is). A job delayed by 1 s runs 1-2 s late
#: at most, with no scheduler process.
DUTY_INTERVAL = 1.0

#: TTL of the master lock while a worker moves due jobs. The worker releases it after each pass,
#: so a scheduler process (pyresque's or Ruby's) takes it at its next pass and keeps it; this only
#: bounds how long a worker killed mid-pass holds the others up.
DUTY_LOCK_TTL = 30

#: Items moved per atomic step (resque-scheduler's ``DELAYED_REQUEUE_BATCH_SIZE``): one Lua call
#: per batch keeps Redis responsive while a huge bucket drains.
DELAYED_BATCH = 100

#: Seconds after its due time that pyresque's side record of a delayed bucket (the ids of the
#: tracked jobs in it) is kept. It is deleted with the bucket when pyresque moves it; this
#: expiry only cleans up after buckets that Ruby's or php's scheduler moved (they drop ids).
DELAYED_PAYLOADS_GRACE = 30 * 86400

#: How often one move retries a bucket that changed between reading and moving (php's scheduler
#: has no lock and may pop from it meanwhile) before leaving it for the next pass.
MOVE_ATTEMPTS = 10

#: Log lines a threaded worker may have waiting for its writer thread before the threads that log
#: wait too (a stalled reader of the log): ~2 MiB of lines, seconds of a busy worker's output.
LOG_BACKLOG = 10_000

#: The largest value pyresque parses from Redis (a queue item, a record). Redis allows 512 MiB;
#: parsing that in a worker would stall it for seconds and hold gigabytes, and no job payload
#: legitimately comes close. A larger item fails alone, with this reason, unparsed.
MAX_VALUE_BYTES = 64 * 1024 * 1024

#: The deepest JSON nesting pyresque parses from Redis. Redis' cjson takes 1000 levels, but
#: Python's decoder and encoder raise RecursionError near the interpreter's limit (1000 frames,
#: less the caller's stack); 200 leaves room for both and for any real job's arguments.
MAX_JSON_DEPTH = 200
