"""The help texts (epilogs) of ``pushdctl`` and each of its commands."""

from __future__ import annotations

MAIN_EPILOG = """\
The command is pushdctl, not pushd: bash and zsh run their own `pushd` builtin (the directory
stack) instead of any program of that name. `python -m pushd` works too.

The client commands (queues, stats, add, tasks, delete, lease, run, pause, resume, purge,
dead, redrive, oidc-rotate) talk to a running `pushdctl serve`: at --server URL, else
$PUSHD_URL, else http://127.0.0.1:8460, with the bearer token --token, else $PUSHD_TOKEN. They print tables
for people; --json prints the daemon's JSON answer for scripts. Errors go to stderr as one
"pushdctl: <message>" line.

exit status:
  0    done
  1    refused: the daemon refused the request (unknown queue, name in use, wrong token, ...),
       part of it was not done (the rest is printed), check-config/serve found a bad file, or
       serve/migrate cannot connect to the PostgreSQL --db
  2    usage error: a bad command line or an unreadable input file; serve: a --db that cannot
       be used (a folder, not a database, an unknown scheme, held by another pushd, damaged;
       the message says what to do); backup: no such database, or DEST exists
  3    cannot reach the daemon, or it answered a transient error: try again later
  130  interrupted (Ctrl-C)

examples:
  pushdctl serve --config queue.yaml
  pushdctl queues
  pushdctl add default --url /hello --payload hi
  pushdctl tasks default
  PUSHD_URL=http://10.0.0.5:8460 pushdctl stats emails --json
  pushdctl COMMAND --help            # every command's options and examples
"""

CHECK_CONFIG_EPILOG = """\
Prints one line per queue (mode, rate, bucket, concurrency, retry policy and, for push queues,
the base URL its tasks go to, from the settings' targets: and default_target) and exits 0, or
prints every problem as PATH:LINE:COLUMN: message on stderr and exits 1. Warnings (such as a
queue target with no mapping in targets:) go to stderr and do not change the exit code. Where
pushd refuses what App Engine would accept, the message says so.

examples:
  pushdctl check-config queue.yaml
  pushdctl check-config queue.yaml.example
  pushdctl check-config queue.yaml --settings config/pushd.yaml   # resolve targets as serve does
  pushdctl check-config path/to/app/queue.yaml && echo valid
"""


BACKUP_EPILOG = """\
Copies the database as it was when the backup started, while pushd keeps adding and
delivering (SQLite's online backup API under one read transaction; it never takes the daemon's
lock). The copy is written to DEST.partial, checked (quick_check) and synced, then renamed to
DEST; an existing DEST is refused. Progress shows on a terminal. For PostgreSQL use pg_dump.

restore: stop pushd, copy the backup over the database, remove its -wal and -shm files, start
pushd; or start pushd with --db pointing at the copy.

examples:
  pushdctl backup --db /var/lib/pushd/pushd.sqlite3 /var/backups/pushd-$(date +%F).sqlite3
  pushdctl backup --db pushd.sqlite3 backups/
"""

INIT_EPILOG = """\
Writes DIR/queue.yaml (every key, commented), DIR/pushd.yaml (hardened settings: tokens and a
signing secret generated here, JSON logs, mode 0640) and DIR/pushd.service (a systemd unit),
from the examples shipped in the package. Refuses to overwrite any of them (exit 1).

examples:
  pushdctl init /etc/pushd
  pushdctl init .
"""

SERVE_EPILOG = """\
Runs the delivery daemon: loads queue.yaml, opens the task database (SQLite by default), serves
the HTTP API and delivers push tasks to their targets until SIGTERM or Ctrl-C, which let
in-flight deliveries finish (up to shutdown_grace_s; it logs what it waits for every
shutdown_report_s). A second SIGTERM or Ctrl-C stops at once: the tasks in flight are given back,
due again at once, and the exit code is 143 (SIGTERM) or 130 (SIGINT) instead of 0. SIGHUP
reloads queue.yaml; a queue removed from it keeps its tasks, shown as removed. Without a
queue.yaml (none given and no ./queue.yaml) it runs App Engine's implicit `default` queue and
says so. Precedence: flags > PUSHD_* environment variables > the settings file > defaults; see
config/pushd.yaml.example. The `listening` line names the versions of pushd, Python, SQLite and
the PostgreSQL server.

examples:
  pushdctl serve --config queue.yaml
  pushdctl serve --config queue.yaml --db /var/lib/pushd/tasks.sqlite3 --port 8460
  pushdctl serve --settings config/pushd.yaml --default-target http://127.0.0.1:8080
  pushdctl serve --db postgresql://pushd@db.internal/pushd   # one of several daemons sharing queues
  pushdctl serve --log-format json --log-level debug          # one JSON object per event, every task
  pushdctl serve --grpc-port 8461     # Cloud Tasks over gRPC too (REST is always under /v2/)
  pkill -HUP -f 'pushdctl serve'     # reload queue.yaml without dropping a task
"""

MIGRATE_EPILOG = """\
Brings the database's schema up to date and exits; `pushdctl serve` does the same on start, so
this is for upgrading ahead of time, or for running the daemons with a database user that may
not change the schema. Migrations are numbered and applied once, in order, under a lock, so
several daemons starting together are safe.

examples:
  pushdctl migrate --db postgresql://pushd@db.internal/pushd
  pushdctl migrate --db pushd.sqlite3
"""

MIGRATE_DB_EPILOG = """\
Copies everything a daemon keeps in a SQLite file (tasks with their retry counters and ETAs,
leases, tombstones, dead letters, paused flags, OIDC signing keys) into a PostgreSQL database,
in one transaction: on any error nothing is copied. The destination must hold no tasks. Stop
the daemon using the file first; then start the daemons with --db postgresql://... (see
README, "Scale-out").

examples:
  pushdctl migrate-db --from pushd.sqlite3 --to postgresql://pushd@db.internal/pushd
  pushdctl migrate-db --from sqlite:////var/lib/pushd/tasks.sqlite3 --to "$DATABASE_URL"
"""

SINK_EPILOG = """\
A local webhook receiver for trying pushd out: prints one line per delivery with its
X-AppEngine-* headers, and answers with --status (or 500 for a --fail-rate share).

examples:
  pushdctl sink --port 8080
  pushdctl sink --port 8080 --fail-rate 0.3          # watch retries happen
  pushdctl sink --port 8080 --status 503 --delay 2   # watch adaptive back-off
"""


QUEUES_EPILOG = """\
One line per queue: mode, state (running or paused), rate (and the rate enforced now when the
queue slowed itself down after 429/503 answers), bucket size, concurrency cap, tasks stored,
the oldest ETA, deliveries in flight, deliveries in the last minute (leases, for a pull queue)
and dead letters.

examples:
  pushdctl queues
  pushdctl queues --json | jq '.queues[] | {name, tasks: .stats.tasks}'
  pushdctl queues --server http://10.0.0.5:8460
"""

STATS_EPILOG = """\
One queue's configuration (rate, bucket, concurrency, target, retry parameters) and statistics
(tasks stored, oldest ETA, deliveries in flight and in the last minute, or leases in the last
minute for a pull queue, dead letters, paused or running).

examples:
  pushdctl stats default
  pushdctl stats emails --json | jq .stats.tasks
"""

ADD_EPILOG = """\
Adds one task as taskqueue.add() does; what is not given takes App Engine's defaults: a name
pushd picks, POST to /_ah/queue/QUEUE on a push queue, a PULL task on a pull queue, the queue's
retry parameters. Prints each task's name, ETA and result. A name in use (TASK_ALREADY_EXISTS)
or deleted too recently (TOMBSTONED_TASK) is reported on stderr and exits 1. Retry options
replace the queue's retry_parameters as a whole, as on App Engine.

examples:
  pushdctl add default --url /hello --payload hi
  pushdctl add emails --name welcome-42 --url /send --param to=a@example.com --countdown 30
  pushdctl add emails --url /send --header 'Content-Type: application/json' --payload-file mail.json
  pushdctl add reports --url /run --eta 2024-05-01T06:00:00Z --retry-limit 3 --age-limit 1d
  pushdctl add pulled-work --payload '{"id": 7}' --tag batch-1      # a pull task
  echo hi | pushdctl add default --url /load --payload-file - --count 500
"""

TASKS_EPILOG = """\
Lists a queue's tasks in name order: ETA, method, URL, tag, retries, last HTTP status and
payload size; 100 at a time: --limit N for more, --all for every one, --after NAME to go on
where a listing stopped (stderr says so when more follow). With a NAME, shows that task in full
with its payload: as text if it is UTF-8 (escaped onto one line), else as base64:....

examples:
  pushdctl tasks default
  pushdctl tasks emails --all --json | jq -r '.tasks[].name'
  pushdctl tasks emails welcome-42
  pushdctl task emails welcome-42 --json         # `task` is another name for `tasks`
"""

DELETE_EPILOG = """\
Deletes tasks by name: push tasks before they run, pull tasks a worker has finished. A name
the queue does not hold is reported on stderr and exits 1, after the others are deleted. A
deleted name cannot be reused for a while (it is tombstoned), as on App Engine. With --dead,
deletes dead letters instead.

examples:
  pushdctl delete emails welcome-42
  pushdctl delete pulled-work task-1 task-2 task-3
  pushdctl delete emails welcome-42 --dead
"""

LEASE_EPILOG = """\
Leases up to --max tasks of a pull queue for --seconds: no one else can lease them until the
lease ends. Delete each task once it is done (pushdctl delete QUEUE NAME); a task whose lease ends
can be leased again, up to the queue's task_retry_limit. --tag leases only tasks with that tag;
--by-tag leases tasks sharing the tag of the oldest task. Payloads show as text if UTF-8, else
as base64:...; --json gives payload_base64 and the exact end of the lease (eta_us).

examples:
  pushdctl lease pulled-work --seconds 60
  pushdctl lease pulled-work --seconds 300 --max 100 --tag batch-1
  pushdctl lease pulled-work --seconds 60 --json | jq -r '.tasks[].name'
"""

RUN_EPILOG = """\
Makes a waiting task due now ("Run now" in App Engine's console); the queue's rate, bucket and
concurrency limits still apply.

examples:
  pushdctl run reports nightly-2024-05-01
"""

OIDC_ROTATE_EPILOG = """\
A new RSA key signs the OIDC ID tokens pushd sends with Cloud Tasks' oidc_token from now on
(every daemon of the store within a minute). The old key stays published at /oauth2/v1/certs
and /oauth2/v3/certs until the last token it signed has expired (1 h and a margin), then is
dropped. Needs an admin token. Prints the new key's id and the ids published now.

examples:
  pushdctl oidc-rotate
  pushdctl oidc-rotate --json | jq -r .kid
"""

PAUSE_EPILOG = """\
Stops delivering a push queue's tasks (or leasing a pull queue's) until `pushdctl resume`; tasks
can still be added. The pause is stored and survives a restart.

examples:
  pushdctl pause emails
  pushdctl pause emails --json | jq .stats.paused
"""

RESUME_EPILOG = """\
Resumes a queue paused with `pushdctl pause`. A queue that queue.yaml pauses (rate 0, or no
longer defined there) stays paused until queue.yaml changes; the output says so.

examples:
  pushdctl resume emails
"""

PURGE_EPILOG = """\
Deletes every task of a queue for good; dead letters stay (see pushdctl dead). Asks first on a
terminal; anywhere else it needs --yes.

examples:
  pushdctl purge emails
  pushdctl purge emails --yes
"""

DEAD_EPILOG = """\
Lists a queue's dead letters: tasks that ran out of retries (task_retry_limit and
task_age_limit), which App Engine would have dropped, with when and why each died; 100 at a
time, as pushdctl tasks. With a NAME, shows one in full, payload included. Put them back with
pushdctl redrive; delete them with pushdctl delete --dead.

examples:
  pushdctl dead emails
  pushdctl dead emails welcome-42
  pushdctl dead emails --all --json | jq -r '.tasks[] | [.name, .reason] | @tsv'
"""

REDRIVE_EPILOG = """\
Puts dead letters back into their queue as tasks due now, as if never tried (retry counts
reset), by name or all of them. A name that is not a dead letter is reported on stderr and
exits 1, after the others are put back.

examples:
  pushdctl redrive emails welcome-42
  pushdctl redrive emails welcome-42 welcome-43
  pushdctl redrive emails --all
"""
