-- pushd's PostgreSQL schema and queries. Times are bigint microseconds since the epoch.
-- Every table is prefixed pushd_ so pushd can share a database with an application. Names
-- compare bytewise (COLLATE "C"), so listing order and paging are SQLite's whatever the locale.
-- Migrations are numbered (migration_N) and applied in order under an advisory lock; the
-- version reached is in pushd_meta. Never edit a released migration: add the next one.

-- name: migration_1
CREATE TABLE pushd_tasks (
    id bigserial PRIMARY KEY,
    queue text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    eta_us bigint NOT NULL,           -- due time; while claimed or leased: when the lease ends
    method text NOT NULL,
    url text NOT NULL,
    on_queue_url integer NOT NULL,
    headers bytea NOT NULL,           -- JSON list of [name, value] pairs
    payload bytea NOT NULL,
    tag bytea,
    created_us bigint NOT NULL,
    retry_options bytea,              -- JSON object, NULL when the task has none
    target text,
    dispatch_deadline_us bigint,
    size integer NOT NULL,
    retry_count integer NOT NULL DEFAULT 0,
    execution_count integer NOT NULL DEFAULT 0,
    first_try_us bigint,
    last_status integer,
    UNIQUE (queue, name)
);
CREATE INDEX pushd_tasks_eta ON pushd_tasks (queue, eta_us, name);
CREATE INDEX pushd_tasks_tag ON pushd_tasks (queue, tag, eta_us, name);
CREATE TABLE pushd_tombstones (
    queue text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    at_us bigint NOT NULL,
    PRIMARY KEY (queue, name)
);
CREATE INDEX pushd_tombstones_at ON pushd_tombstones (at_us);
CREATE TABLE pushd_dead_tasks (
    queue text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    dead_us bigint NOT NULL,
    reason text NOT NULL,
    task bytea NOT NULL,              -- the whole task as JSON, counters as of its last attempt
    PRIMARY KEY (queue, name)
);
CREATE INDEX pushd_dead_tasks_at ON pushd_dead_tasks (dead_us);
CREATE TABLE pushd_queue_state (
    queue text COLLATE "C" PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false
);
-- Tasks and bytes per queue, kept by statement-level triggers (one update per statement, not
-- per row), so statistics and the storage limit never scan the tasks.
CREATE TABLE pushd_queue_totals (
    queue text COLLATE "C" PRIMARY KEY,
    tasks bigint NOT NULL,
    bytes bigint NOT NULL
);
CREATE FUNCTION pushd_totals_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pushd_queue_totals (queue, tasks, bytes)
    SELECT queue, COUNT(*), SUM(size) FROM new_rows GROUP BY queue ORDER BY queue
    ON CONFLICT (queue) DO UPDATE
    SET tasks = pushd_queue_totals.tasks + excluded.tasks,
        bytes = pushd_queue_totals.bytes + excluded.bytes;
    RETURN NULL;
END $$;
CREATE FUNCTION pushd_totals_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pushd_queue_totals AS t SET tasks = t.tasks - d.n, bytes = t.bytes - d.b
    FROM (SELECT queue, COUNT(*) AS n, SUM(size) AS b FROM old_rows GROUP BY queue) AS d
    WHERE t.queue = d.queue;
    RETURN NULL;
END $$;
CREATE TRIGGER pushd_tasks_totals_insert AFTER INSERT ON pushd_tasks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pushd_totals_insert();
CREATE TRIGGER pushd_tasks_totals_delete AFTER DELETE ON pushd_tasks
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pushd_totals_delete();
-- The daemons sharing this database (a heartbeat each) and which of them dispatches each push
-- queue: an owner holds a queue until until_us (the database's clock) and renews it; its live
-- statistics are published beside, for the other daemons' answers.
CREATE TABLE pushd_daemons (
    id text PRIMARY KEY,
    seen_us bigint NOT NULL,
    about text NOT NULL
);
CREATE TABLE pushd_queue_owners (
    queue text COLLATE "C" PRIMARY KEY,
    owner text NOT NULL,
    until_us bigint NOT NULL,
    live bytea
);
CREATE TABLE pushd_secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL
);

-- name: migration_2
-- A push task keeps its last failed attempt (time, status or error, message, URL) as JSON.
ALTER TABLE pushd_tasks ADD COLUMN last_attempt bytea;

-- name: migration_3
-- Queues created through the Cloud Tasks API; a deleted one keeps its row (deleted_us set) for
-- an hour, so its name cannot be used again meanwhile.
CREATE TABLE pushd_api_queues (
    name text COLLATE "C" PRIMARY KEY,
    spec bytea NOT NULL,
    created_us bigint NOT NULL,
    deleted_us bigint
);

-- name: migration_4
-- The RSA keys OIDC tokens are signed with (pushd.oidc), shared by every daemon; at most one
-- current key (retired_us NULL), the retired ones kept while tokens they signed may be presented.
CREATE TABLE pushd_signing_keys (
    kid text PRIMARY KEY,
    pem bytea NOT NULL,
    created_us bigint NOT NULL,
    retired_us bigint
);
CREATE UNIQUE INDEX pushd_signing_keys_current ON pushd_signing_keys ((retired_us IS NULL))
WHERE retired_us IS NULL;

-- name: meta_table
CREATE TABLE IF NOT EXISTS pushd_meta (key text PRIMARY KEY, value text NOT NULL);

-- name: schema_version
SELECT COALESCE((SELECT value::integer FROM pushd_meta WHERE key = 'schema_version'), 0);

-- name: set_schema_version
INSERT INTO pushd_meta (key, value) VALUES ('schema_version', $1::integer::text)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: db_now_us
SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;

-- name: insert_tasks
-- One statement for a whole batch: a column of values per parameter.
INSERT INTO pushd_tasks (queue, name, eta_us, method, url, on_queue_url, headers, payload, tag,
                         created_us, retry_options, target, dispatch_deadline_us, size,
                         retry_count, execution_count, first_try_us, last_status,
                         last_attempt)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                     $6::integer[], $7::bytea[], $8::bytea[], $9::bytea[], $10::bigint[],
                     $11::bytea[], $12::text[], $13::bigint[], $14::integer[], $15::integer[],
                     $16::integer[], $17::bigint[], $18::integer[], $19::bytea[])
ON CONFLICT (queue, name) DO NOTHING
RETURNING queue, name;

-- name: tombstoned_names
SELECT name FROM pushd_tombstones WHERE queue = $1 AND at_us > $2 AND name = ANY($3::text[]);

-- name: live_tombstone
SELECT 1 FROM pushd_tombstones WHERE queue = $1 AND name = $2 AND at_us > $3;

-- name: clear_tombstone
DELETE FROM pushd_tombstones WHERE queue = $1 AND name = $2;

-- name: tombstone_many
INSERT INTO pushd_tombstones (queue, name, at_us)
SELECT q, n, $3 FROM unnest($1::text[], $2::text[]) AS x(q, n)
ON CONFLICT (queue, name) DO UPDATE SET at_us = excluded.at_us;

-- name: get_task
SELECT * FROM pushd_tasks WHERE queue = $1 AND name = $2;

-- name: get_task_for_update
SELECT * FROM pushd_tasks WHERE queue = $1 AND name = $2 FOR UPDATE;

-- name: list_tasks
SELECT * FROM pushd_tasks WHERE queue = $1 AND name > $2 ORDER BY name LIMIT $3;

-- name: list_tasks_matching
-- $3 = length($4); no "name >= prefix" bound: under a locale collation names with a common
-- prefix need not sort together, only equality is bytewise. $5 NULL: any tag.
SELECT * FROM pushd_tasks
WHERE queue = $1 AND name > $2 AND left(name, $3) = $4 AND ($5::bytea IS NULL OR tag = $5)
ORDER BY name LIMIT $6;

-- name: delete_names
DELETE FROM pushd_tasks WHERE queue = $1 AND name = ANY($2::text[]) RETURNING name;

-- name: delete_ids
DELETE FROM pushd_tasks WHERE id = ANY($1::bigint[]);

-- name: purge_tombstones
INSERT INTO pushd_tombstones (queue, name, at_us)
SELECT queue, name, $1 FROM pushd_tasks WHERE queue = $2
ON CONFLICT (queue, name) DO UPDATE SET at_us = excluded.at_us;

-- name: purge_tasks
DELETE FROM pushd_tasks WHERE queue = $1;

-- name: set_eta
UPDATE pushd_tasks SET eta_us = $1 WHERE queue = $2 AND name = $3;

-- name: claim_due
-- Take the earliest due push tasks no other daemon is taking (SKIP LOCKED) and lease them in
-- the same statement: ETA := now + (deadlines x their dispatch deadline + slack, or lease).
WITH due AS (
    SELECT id, eta_us AS due_eta_us FROM pushd_tasks
    WHERE queue = $1 AND eta_us <= $2 AND method <> 'PULL'
    ORDER BY eta_us, name LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE pushd_tasks AS t
SET eta_us = $2 + CASE WHEN t.dispatch_deadline_us IS NULL THEN $4
                       ELSE $5 * t.dispatch_deadline_us + $6 END
FROM due WHERE t.id = due.id
RETURNING t.*, due.due_eta_us;

-- name: next_eta
-- The same tasks claim_due takes: pull tasks stranded in a push queue (its mode changed under
-- them) would otherwise look due for ever and keep the queue's loop spinning.
SELECT eta_us FROM pushd_tasks WHERE queue = $1 AND method <> 'PULL'
ORDER BY eta_us, name LIMIT 1;

-- name: stranded
-- Per queue, its tasks of the other kind ($2: whether the queue is push).
SELECT w.q, COUNT(*) FROM unnest($1::text[], $2::boolean[]) AS w(q, push)
JOIN pushd_tasks AS t ON t.queue = w.q AND (t.method = 'PULL') = w.push
GROUP BY w.q;

-- name: step_back
UPDATE pushd_tasks SET eta_us = eta_us - $1
WHERE queue = $2 AND eta_us > $3 AND eta_us <= $4 AND method <> 'PULL'
  AND NOT (name = ANY($5::text[]));

-- name: unlisted
-- Every queue not in $1 holding tasks or dead letters: its tasks, whether its earliest task is
-- a pull task (one index seek, not a scan), its dead letters.
WITH held(queue) AS (
    SELECT queue FROM pushd_queue_totals WHERE tasks > 0
    UNION SELECT DISTINCT queue FROM pushd_dead_tasks
)
SELECT h.queue,
       COALESCE((SELECT tasks FROM pushd_queue_totals WHERE queue = h.queue), 0),
       COALESCE((SELECT method = 'PULL' FROM pushd_tasks WHERE queue = h.queue
                 ORDER BY eta_us, name LIMIT 1), false),
       (SELECT COUNT(*) FROM pushd_dead_tasks WHERE queue = h.queue)
FROM held AS h
WHERE NOT h.queue = ANY($1::text[])
ORDER BY h.queue;

-- name: finish_done
WITH done AS (
    DELETE FROM pushd_tasks AS t
    USING unnest($1::text[], $2::text[], $3::bigint[]) AS d(q, n, e)
    WHERE t.queue = d.q AND t.name = d.n AND t.eta_us = d.e
    RETURNING t.queue, t.name
)
INSERT INTO pushd_tombstones (queue, name, at_us) SELECT queue, name, $4 FROM done
ON CONFLICT (queue, name) DO UPDATE SET at_us = excluded.at_us;

-- name: finish_retry
UPDATE pushd_tasks AS t
SET eta_us = r.eta, retry_count = r.rc, execution_count = r.ec, first_try_us = r.ft,
    last_status = r.ls, last_attempt = r.la
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::integer[], $6::integer[],
            $7::bigint[], $8::integer[], $9::bytea[]) AS r(q, n, lease, eta, rc, ec, ft, ls, la)
WHERE t.queue = r.q AND t.name = r.n AND t.eta_us = r.lease;

-- name: get_leased
SELECT * FROM pushd_tasks WHERE queue = $1 AND name = $2 AND eta_us = $3 FOR UPDATE;

-- name: insert_dead
INSERT INTO pushd_dead_tasks (queue, name, dead_us, reason, task) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (queue, name) DO UPDATE
SET dead_us = excluded.dead_us, reason = excluded.reason, task = excluded.task;

-- name: due_pull
SELECT * FROM pushd_tasks WHERE queue = $1 AND eta_us <= $2 AND method = 'PULL'
ORDER BY eta_us, name LIMIT $3 FOR UPDATE SKIP LOCKED;

-- name: due_pull_tagged
SELECT * FROM pushd_tasks WHERE queue = $1 AND tag = $4 AND eta_us <= $2 AND method = 'PULL'
ORDER BY eta_us, name LIMIT $3 FOR UPDATE SKIP LOCKED;

-- name: due_pull_untagged
SELECT * FROM pushd_tasks WHERE queue = $1 AND tag IS NULL AND eta_us <= $2 AND method = 'PULL'
ORDER BY eta_us, name LIMIT $3 FOR UPDATE SKIP LOCKED;

-- name: lease_ids
UPDATE pushd_tasks SET eta_us = $1, retry_count = retry_count + 1 WHERE id = ANY($2::bigint[]);

-- name: set_paused
INSERT INTO pushd_queue_state (queue, paused) VALUES ($1, $2)
ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused;

-- name: paused_queues
SELECT queue FROM pushd_queue_state WHERE paused;

-- name: counts
SELECT COALESCE((SELECT tasks FROM pushd_queue_totals WHERE queue = $1), 0),
       (SELECT MIN(eta_us) FROM pushd_tasks WHERE queue = $1),
       COALESCE((SELECT bytes FROM pushd_queue_totals WHERE queue = $1), 0),
       (SELECT COUNT(*) FROM pushd_dead_tasks WHERE queue = $1);

-- name: total_bytes
SELECT COALESCE(SUM(bytes), 0)::bigint FROM pushd_queue_totals;

-- name: list_dead
SELECT * FROM pushd_dead_tasks WHERE queue = $1 AND name > $2 ORDER BY name LIMIT $3;

-- name: get_dead
SELECT * FROM pushd_dead_tasks WHERE queue = $1 AND name = $2;

-- name: delete_dead
DELETE FROM pushd_dead_tasks WHERE queue = $1 AND name = $2;

-- name: expire_tombstones
DELETE FROM pushd_tombstones WHERE at_us <= $1;

-- name: expire_dead
DELETE FROM pushd_dead_tasks WHERE dead_us <= $1;

-- name: heartbeat
INSERT INTO pushd_daemons (id, seen_us, about) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET seen_us = excluded.seen_us;

-- name: forget_daemons
DELETE FROM pushd_daemons WHERE seen_us <= $1 OR id = ANY($2::text[]);

-- name: live_daemons
SELECT id FROM pushd_daemons ORDER BY id;

-- name: owners
SELECT queue, owner, until_us, live FROM pushd_queue_owners FOR UPDATE;

-- name: set_owner
INSERT INTO pushd_queue_owners (queue, owner, until_us, live) VALUES ($1, $2, $3, $4)
ON CONFLICT (queue) DO UPDATE
SET owner = excluded.owner, until_us = excluded.until_us, live = excluded.live;

-- name: release_owner
DELETE FROM pushd_queue_owners WHERE queue = $1 AND owner = $2;

-- name: release_all
DELETE FROM pushd_queue_owners WHERE owner = $1;

-- name: get_secret
SELECT value FROM pushd_secrets WHERE name = $1;

-- name: put_secret
INSERT INTO pushd_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING;

-- name: api_queues
SELECT name, spec, created_us FROM pushd_api_queues WHERE deleted_us IS NULL ORDER BY name;

-- name: find_api_queue
SELECT created_us, deleted_us FROM pushd_api_queues WHERE name = $1 FOR UPDATE;

-- name: put_api_queue
INSERT INTO pushd_api_queues (name, spec, created_us, deleted_us) VALUES ($1, $2, $3, NULL)
ON CONFLICT (name) DO UPDATE
SET spec = excluded.spec, created_us = excluded.created_us, deleted_us = NULL;

-- name: delete_api_queue
UPDATE pushd_api_queues SET deleted_us = $1 WHERE name = $2 AND deleted_us IS NULL;

-- name: drop_queue_tasks
DELETE FROM pushd_tasks WHERE queue = $1;

-- name: drop_queue_tombstones
DELETE FROM pushd_tombstones WHERE queue = $1;

-- name: drop_queue_dead
DELETE FROM pushd_dead_tasks WHERE queue = $1;

-- name: drop_queue_state
DELETE FROM pushd_queue_state WHERE queue = $1;

-- name: expire_api_queues
DELETE FROM pushd_api_queues WHERE deleted_us <= $1;

-- name: signing_keys
SELECT kid, pem, created_us, retired_us FROM pushd_signing_keys
ORDER BY retired_us IS NULL, created_us, kid;

-- name: retire_signing_key
UPDATE pushd_signing_keys SET retired_us = $1 WHERE retired_us IS NULL;

-- name: insert_signing_key
INSERT INTO pushd_signing_keys (kid, pem, created_us) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING;

-- name: drop_signing_keys
DELETE FROM pushd_signing_keys WHERE retired_us IS NOT NULL AND retired_us < $1;
