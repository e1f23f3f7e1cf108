-- pushd's SQLite schema and queries. Times are integer microseconds since the epoch.
-- The ETA index (queue, eta_us) makes "what is due next" O(log n) whatever the backlog.

-- name: schema
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    eta_us INTEGER NOT NULL,          -- due time; while claimed or leased: when the lease ends
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    on_queue_url INTEGER NOT NULL,
    headers BLOB NOT NULL,            -- JSON list of [name, value] pairs
    payload BLOB NOT NULL,
    tag BLOB,
    created_us INTEGER NOT NULL,
    retry_options BLOB,               -- JSON object, NULL when the task has none
    target TEXT,
    dispatch_deadline_us INTEGER,
    size INTEGER NOT NULL,
    retry_count INTEGER NOT NULL DEFAULT 0,
    execution_count INTEGER NOT NULL DEFAULT 0,
    first_try_us INTEGER,
    last_status INTEGER,
    claimed INTEGER NOT NULL DEFAULT 0,  -- 1 while a push claim holds it (schema 3)
    last_attempt BLOB,                -- JSON: the last failed attempt of a push task (schema 4)
    UNIQUE (queue, name)
);
CREATE INDEX IF NOT EXISTS tasks_eta ON tasks (queue, eta_us, name);
CREATE INDEX IF NOT EXISTS tasks_tag ON tasks (queue, tag, eta_us, name);
CREATE TABLE IF NOT EXISTS tombstones (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    PRIMARY KEY (queue, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tombstones_at ON tombstones (at_us);
CREATE TABLE IF NOT EXISTS dead_tasks (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    dead_us INTEGER NOT NULL,
    reason TEXT NOT NULL,
    task BLOB NOT NULL,               -- the whole task as JSON, counters as of its last attempt
    PRIMARY KEY (queue, name)
);
CREATE INDEX IF NOT EXISTS dead_tasks_at ON dead_tasks (dead_us);
CREATE TABLE IF NOT EXISTS queue_state (
    queue TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
-- Schema 2: tasks and bytes per queue, kept by triggers, so statistics and the storage limit
-- cost O(1) instead of a scan of every stored task (141 ms at 300,000 tasks).
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS queue_totals (
    queue TEXT PRIMARY KEY,
    tasks INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS tasks_totals_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO queue_totals (queue, tasks, bytes) VALUES (NEW.queue, 1, NEW.size)
    ON CONFLICT (queue) DO UPDATE SET tasks = tasks + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS tasks_totals_delete AFTER DELETE ON tasks BEGIN
    UPDATE queue_totals SET tasks = tasks - 1, bytes = bytes - OLD.size WHERE queue = OLD.queue;
END;
-- a schema 1 file: count what it already holds, once
INSERT INTO queue_totals (queue, tasks, bytes)
SELECT queue, COUNT(*), SUM(size) FROM tasks
WHERE (SELECT value FROM meta WHERE key = 'schema_version') = '1'
GROUP BY queue;
UPDATE meta SET value = '2' WHERE key = 'schema_version' AND value = '1';
COMMIT;

-- name: insert_task
INSERT INTO tasks (queue, name, eta_us, method, url, on_queue_url, headers, payload, tag,
                   created_us, retry_options, target, dispatch_deadline_us, size,
                   retry_count, execution_count, first_try_us, last_status, last_attempt)
VALUES (:queue, :name, :eta_us, :method, :url, :on_queue_url, :headers, :payload, :tag,
        :created_us, :retry_options, :target, :dispatch_deadline_us, :size,
        :retry_count, :execution_count, :first_try_us, :last_status, :last_attempt)
ON CONFLICT (queue, name) DO NOTHING;

-- name: insert_task_row
-- insert_task with positional parameters (codec.task_row): a batch add binds one row per task.
INSERT INTO tasks (queue, name, eta_us, method, url, on_queue_url, headers, payload, tag,
                   created_us, retry_options, target, dispatch_deadline_us, size,
                   retry_count, execution_count, first_try_us, last_status, last_attempt)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (queue, name) DO NOTHING;

-- name: live_tombstone
SELECT 1 FROM tombstones WHERE queue = ? AND name = ? AND at_us > ?;

-- name: clear_tombstone
DELETE FROM tombstones WHERE queue = ? AND name = ?;

-- name: tombstone
INSERT INTO tombstones (queue, name, at_us) VALUES (?, ?, ?)
ON CONFLICT (queue, name) DO UPDATE SET at_us = excluded.at_us;

-- name: get_task
SELECT * FROM tasks WHERE queue = ? AND name = ?;

-- name: list_tasks
SELECT * FROM tasks WHERE queue = ? AND name > ? ORDER BY name LIMIT ?;

-- name: list_tasks_matching
-- (queue, max(after, prefix), after, length(prefix), prefix, tag, tag, limit); tag NULL: any.
-- Names compare bytewise (BINARY), so those with the prefix start at it: the (queue, name)
-- index seeks there.
SELECT * FROM tasks
WHERE queue = ? AND name >= ? AND name > ? AND substr(name, 1, ?) = ? AND (? IS NULL OR tag = ?)
ORDER BY name LIMIT ?;

-- name: delete_task
DELETE FROM tasks WHERE queue = ? AND name = ?;

-- name: delete_named
-- ?2 is a JSON array of names: one statement deletes a whole request's.
DELETE FROM tasks WHERE queue = ?1 AND name IN (SELECT value FROM json_each(?2)) RETURNING name;

-- name: purge_tombstones
INSERT INTO tombstones (queue, name, at_us) SELECT queue, name, ? FROM tasks WHERE queue = ?
ON CONFLICT (queue, name) DO UPDATE SET at_us = excluded.at_us;

-- name: purge_tasks
DELETE FROM tasks WHERE queue = ?;

-- name: set_eta
UPDATE tasks SET eta_us = ? WHERE queue = ? AND name = ?;

-- name: due_push
-- Plain tuples in this column order (codec.TASK_COLUMNS, then the id): read by position, not
-- through sqlite3.Row's lookup by name, for every claimed task.
SELECT queue, name, eta_us, method, url, on_queue_url, headers, payload, tag, created_us,
       retry_options, target, dispatch_deadline_us, size, retry_count, execution_count,
       first_try_us, last_status, last_attempt, id
FROM tasks WHERE queue = ? AND eta_us <= ? AND method != 'PULL'
ORDER BY eta_us, name LIMIT ?;

-- name: claim_many
-- One statement per claim batch: ?5 is a JSON array of the ids due_push found. The lease is
-- store.base.lease_for's: ?3 x the task's dispatch deadline + ?4, else ?2; ETA := ?1 + lease.
UPDATE tasks
SET eta_us = ?1 + CASE WHEN dispatch_deadline_us IS NULL THEN ?2
                       ELSE ?3 * dispatch_deadline_us + ?4 END,
    claimed = 1
WHERE id IN (SELECT value FROM json_each(?5));

-- name: add_claimed_column
-- Schema 3: push claims are marked, so a daemon that holds the file's lock gives back the claims
-- of the one before it (gone: it held the lock) at start instead of waiting for them to end.
ALTER TABLE tasks ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0;

-- name: schema_3
UPDATE meta SET value = '3' WHERE key = 'schema_version' AND value = '2';

-- name: add_last_attempt_column
-- Schema 4: a push task keeps its last failed attempt (time, status or error, message, URL).
ALTER TABLE tasks ADD COLUMN last_attempt BLOB;

-- name: schema_4
UPDATE meta SET value = '4' WHERE key = 'schema_version' AND value = '3';

-- name: schema_6
-- Schema 6: the RSA keys OIDC tokens are signed with (pushd.oidc); at most one current key
-- (retired_us NULL), the retired ones kept while tokens they signed may still be presented.
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    pem BLOB NOT NULL,
    created_us INTEGER NOT NULL,
    retired_us INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS signing_keys_current ON signing_keys ((retired_us IS NULL))
WHERE retired_us IS NULL;
UPDATE meta SET value = '6' WHERE key = 'schema_version' AND value = '5';
COMMIT;

-- name: signing_keys
SELECT kid, pem, created_us, retired_us FROM signing_keys
ORDER BY retired_us IS NULL, created_us, kid;

-- name: retire_signing_key
UPDATE signing_keys SET retired_us = ? WHERE retired_us IS NULL;

-- name: insert_signing_key
INSERT OR IGNORE INTO signing_keys (kid, pem, created_us) VALUES (?, ?, ?);

-- name: drop_signing_keys
DELETE FROM signing_keys WHERE retired_us IS NOT NULL AND retired_us < ?;

-- name: give_back_claims
UPDATE tasks SET eta_us = MIN(eta_us, ?), claimed = 0 WHERE claimed = 1;

-- name: next_eta
-- The same tasks due_push takes: pull tasks stranded in a push queue (its mode changed under
-- them) would otherwise look due for ever and keep the queue's loop spinning.
SELECT eta_us FROM tasks WHERE queue = ? AND method != 'PULL' ORDER BY eta_us, name LIMIT 1;

-- name: stranded
-- ?1: JSON {queue: 1 for push, 0 for pull}; per queue, its tasks of the other kind.
SELECT w.key, COUNT(*) FROM json_each(?1) AS w
JOIN tasks AS t ON t.queue = w.key AND (t.method = 'PULL') = w.value
GROUP BY w.key;

-- name: step_back
UPDATE tasks SET eta_us = eta_us - ?
WHERE queue = ? AND eta_us > ? AND eta_us <= ? AND method != 'PULL'
  AND name NOT IN (SELECT value FROM json_each(?));

-- name: unlisted
-- ?1: JSON array of queue names. Every other queue holding tasks or dead letters: its tasks,
-- whether its earliest task is a pull task (one index seek, not a scan), its dead letters.
WITH held(queue) AS (
    SELECT queue FROM queue_totals WHERE tasks > 0
    UNION SELECT queue FROM dead_tasks
)
SELECT h.queue,
       COALESCE((SELECT tasks FROM queue_totals WHERE queue = h.queue), 0),
       COALESCE((SELECT method = 'PULL' FROM tasks WHERE queue = h.queue
                 ORDER BY eta_us, name LIMIT 1), 0),
       (SELECT COUNT(*) FROM dead_tasks WHERE queue = h.queue)
FROM held AS h
WHERE h.queue NOT IN (SELECT value FROM json_each(?1))
ORDER BY h.queue;

-- name: finish_retry
UPDATE tasks SET eta_us = ?, retry_count = ?, execution_count = ?, first_try_us = ?,
                 last_status = ?, last_attempt = ?, claimed = 0
WHERE queue = ? AND name = ? AND eta_us = ?;

-- name: get_leased
SELECT * FROM tasks WHERE queue = ? AND name = ? AND eta_us = ?;

-- name: insert_dead
INSERT INTO dead_tasks (queue, name, dead_us, reason, task) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (queue, name) DO UPDATE
SET dead_us = excluded.dead_us, reason = excluded.reason, task = excluded.task;

-- name: due_pull
SELECT * FROM tasks WHERE queue = ? AND eta_us <= ? AND method = 'PULL'
ORDER BY eta_us, name LIMIT ?;

-- name: due_pull_tagged
SELECT * FROM tasks WHERE queue = ?1 AND tag = ?4 AND eta_us <= ?2 AND method = 'PULL'
ORDER BY eta_us, name LIMIT ?3;

-- name: due_pull_untagged
SELECT * FROM tasks WHERE queue = ? AND tag IS NULL AND eta_us <= ? AND method = 'PULL'
ORDER BY eta_us, name LIMIT ?;

-- name: lease_task
UPDATE tasks SET eta_us = ?, retry_count = retry_count + 1 WHERE id = ?;

-- name: set_paused
INSERT INTO queue_state (queue, paused) VALUES (?, ?)
ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused;

-- name: paused_queues
SELECT queue FROM queue_state WHERE paused = 1;

-- name: counts
SELECT COALESCE((SELECT tasks FROM queue_totals WHERE queue = ?1), 0),
       (SELECT MIN(eta_us) FROM tasks WHERE queue = ?1),
       COALESCE((SELECT bytes FROM queue_totals WHERE queue = ?1), 0);

-- name: count_dead
SELECT COUNT(*) FROM dead_tasks WHERE queue = ?;

-- name: total_bytes
SELECT COALESCE(SUM(bytes), 0) FROM queue_totals;

-- name: list_dead
SELECT * FROM dead_tasks WHERE queue = ? AND name > ? ORDER BY name LIMIT ?;

-- name: get_dead
SELECT * FROM dead_tasks WHERE queue = ? AND name = ?;

-- name: delete_dead
DELETE FROM dead_tasks WHERE queue = ? AND name = ?;

-- name: expire_tombstones
DELETE FROM tombstones WHERE at_us <= ?;

-- name: expire_dead
DELETE FROM dead_tasks WHERE dead_us <= ?;

-- name: tombstoned_names
-- ?3 is a JSON array of names: one statement checks a whole batch.
SELECT name FROM tombstones
WHERE queue = ?1 AND at_us > ?2 AND name IN (SELECT value FROM json_each(?3));

-- name: live_names
SELECT name FROM tasks WHERE queue = ?1 AND name IN (SELECT value FROM json_each(?2));

-- name: tombstone_done_many
-- ?1 is a JSON array of [queue, name, lease_eta_us]: tombstone (at ?2) the tasks whose lease
-- still matches, which finish_done_many then deletes, in SQLite, with no row handed to Python
-- and back. ("WHERE true": SQLite's upsert after a SELECT needs it.)
INSERT INTO tombstones (queue, name, at_us)
SELECT t.queue, t.name, ?2 FROM json_each(?1) AS j
JOIN tasks AS t
  ON t.queue = json_extract(j.value, '$[0]')
 AND t.name = json_extract(j.value, '$[1]')
 AND t.eta_us = json_extract(j.value, '$[2]')
WHERE true
ON CONFLICT (queue, name) DO UPDATE SET at_us = excluded.at_us;

-- name: finish_done_many
-- ?1 as above; delete its tasks (tombstoned just before by tombstone_done_many).
DELETE FROM tasks WHERE id IN (
    SELECT t.id FROM json_each(?1) AS j
    JOIN tasks AS t
      ON t.queue = json_extract(j.value, '$[0]')
     AND t.name = json_extract(j.value, '$[1]')
     AND t.eta_us = json_extract(j.value, '$[2]')
);

-- name: schema_5
-- Schema 5: queues created through the Cloud Tasks API; a deleted one keeps its row (deleted_us
-- set) for an hour, so its name cannot be used again meanwhile.
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS api_queues (
    name TEXT PRIMARY KEY,
    spec BLOB NOT NULL,               -- JSON: the queue's Cloud Tasks settings
    created_us INTEGER NOT NULL,
    deleted_us INTEGER                -- NULL while the queue exists
);
UPDATE meta SET value = '5' WHERE key = 'schema_version' AND value = '4';
COMMIT;

-- name: api_queues
SELECT name, spec, created_us FROM api_queues WHERE deleted_us IS NULL ORDER BY name;

-- name: find_api_queue
SELECT created_us, deleted_us FROM api_queues WHERE name = ?;

-- name: put_api_queue
INSERT INTO api_queues (name, spec, created_us, deleted_us) VALUES (?, ?, ?, NULL)
ON CONFLICT (name) DO UPDATE
SET spec = excluded.spec, created_us = excluded.created_us, deleted_us = NULL;

-- name: delete_api_queue
UPDATE api_queues SET deleted_us = ? WHERE name = ? AND deleted_us IS NULL;

-- name: drop_queue_tasks
DELETE FROM tasks WHERE queue = ?;

-- name: drop_queue_tombstones
DELETE FROM tombstones WHERE queue = ?;

-- name: drop_queue_dead
DELETE FROM dead_tasks WHERE queue = ?;

-- name: drop_queue_state
DELETE FROM queue_state WHERE queue = ?;

-- name: expire_api_queues
DELETE FROM api_queues WHERE deleted_us <= ?;

-- name: schema_version_now
SELECT value FROM meta WHERE key = 'schema_version';
