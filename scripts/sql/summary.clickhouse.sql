-- scripts/sql/summary.sql for ClickHouse (24.3 or later, or chDB), on a copy of Bakeoff's events table with the
-- same columns and types (SQLite's INTEGER as Int64, TEXT as String; `line` is the raw JSON event):
--
--   CREATE TABLE events (id Int64, ts Int64, experiment String, kind String, variant String, user_id String,
--       conversation_id String, request_id String, status String, qa Int64, line String, name String)
--   ENGINE = MergeTree ORDER BY (experiment, id);
--   INSERT INTO events SELECT id, ts, experiment, kind, variant, user_id, conversation_id, request_id, status, qa,
--       line, name FROM sqlite('bakeoff.db', 'events');   -- a copy of the SQLite store, e.g. with clickhouse-local
--
-- (id: storage order, ts: microseconds since the epoch, qa: 0 or 1). The same query clause for clause; what differs:
--   parameters   query parameters {experiment:String} and {start:String} instead of :experiment and :start
--   JSON         JSONExtractString / JSONExtract(line, 'key', 'Nullable(Float64)') instead of json_extract, with
--                true/false turned into 1/0 explicitly, as SQLite's json_extract gives them (JSONExtractFloat
--                reads true as 0, and what JSONExtract makes of a bool has changed between versions); a missing
--                key or JSON null is NULL, as in SQLite
--   time         parseDateTime64BestEffort({start:String}, 6, 'UTC') instead of strftime('%s', ...): a start
--                without an offset is UTC, as in SQLite
--   NULLs        SETTINGS join_use_nulls = 1 (it holds for the whole query, CTEs included): without it a LEFT JOIN
--                fills a missing row's columns that are not Nullable with '' and 0 instead of NULL, so feedback on
--                an unknown request would complete conversation '' when a request has an empty conversation_id
--                (Bakeoff never writes one, a warehouse table may), and COUNT(u.m) would count one user for a
--                (variant, metric) without users as soon as a metric's m is not Nullable
--   sums         COALESCE(SUM(x), 0) instead of TOTAL(x) (SUM of no values is NULL here too); no printf: ClickHouse
--                prints Float64 with shortest round-trip digits, and sums of counts are exact UInt64
--   metrics      SELECT ... UNION ALL instead of a VALUES list
--
--   clickhouse-client --param_experiment=support-bot-v2 --param_start=2026-11-08T00:00:00Z \
--     --format CSVWithNames --queries-file scripts/sql/summary.clickhouse.sql > summary.csv
--
-- chDB (Python): chdb.session.Session().query(sql, "CSVWithNames",
--                    params={"experiment": "support-bot-v2", "start": "2026-11-08T00:00:00Z"})
WITH
params AS (
    SELECT {experiment:String} AS experiment,
           toUnixTimestamp64Micro(parseDateTime64BestEffort({start:String}, 6, 'UTC')) AS start_us
),
ev AS (  -- the experiment's events, post = 1 from the start on, 0 before it
    SELECT e.id AS id, e.ts AS ts, e.kind AS kind, e.variant AS variant, e.user_id AS user_id,
           e.conversation_id AS conversation_id, e.request_id AS request_id, e.line AS line,
           CASE WHEN e.ts >= p.start_us THEN 1 ELSE 0 END AS post
    FROM events e, params p
    WHERE e.experiment = p.experiment AND e.qa = 0
),
req AS (  -- requests, each request id once per period (the first stored)
    SELECT * FROM (
        SELECT ev.*, ROW_NUMBER() OVER (PARTITION BY post, request_id ORDER BY id) AS copy
        FROM ev WHERE kind = 'request'
    ) numbered WHERE copy = 1
),
assignment AS (  -- each analysed user's variant: that of their first request from the start on
    SELECT user_id, variant FROM (
        SELECT user_id, variant, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts, id) AS k
        FROM req WHERE post = 1
    ) numbered WHERE k = 1
),
conversation AS (  -- each conversation's user: the user of its first stored request, per period
    SELECT post, conversation_id, user_id FROM (
        SELECT post, conversation_id, user_id, ROW_NUMBER() OVER (PARTITION BY post, conversation_id ORDER BY id) AS k
        FROM req
    ) numbered WHERE k = 1
),
completion AS (  -- "task_completed" feedback with its conversation (through its request when it names one)
    SELECT f.post AS post, f.ts AS ts, f.id AS id,
           CASE WHEN f.request_id <> '' THEN r.conversation_id ELSE f.conversation_id END AS conversation_id,
           CASE WHEN JSONType(f.line, 'value') = 'Bool' THEN toFloat64(JSONExtractBool(f.line, 'value'))
                ELSE JSONExtract(f.line, 'value', 'Nullable(Float64)') END AS value
    FROM ev f LEFT JOIN req r ON r.post = f.post AND r.request_id = f.request_id
    WHERE f.kind = 'feedback' AND JSONExtractString(f.line, 'name') = 'task_completed'
),
task_completion AS (  -- per user: m = completed conversations, d = conversations with an outcome
    SELECT c.post AS post, c.user_id AS user_id, SUM(l.value) AS m, COUNT(*) AS d
    FROM (
        SELECT post, conversation_id, value,
               ROW_NUMBER() OVER (PARTITION BY post, conversation_id ORDER BY ts DESC, id DESC) AS k
        FROM completion WHERE conversation_id IS NOT NULL
    ) l
    JOIN conversation c ON c.post = l.post AND c.conversation_id = l.conversation_id
    WHERE l.k = 1
    GROUP BY c.post, c.user_id
),
output_tokens AS (  -- per user: m = output tokens, d = requests that report them
    SELECT post, user_id, SUM(JSONExtract(line, 'output_tokens', 'Nullable(Float64)')) AS m,
           COUNT(JSONExtract(line, 'output_tokens', 'Nullable(Float64)')) AS d
    FROM req GROUP BY post, user_id
),
per_user AS (  -- one row per (metric, analysed user with a unit): post m, d and pre-period mp, dp (0 without)
    SELECT 'task_completion' AS metric, a.variant AS variant, x.m AS m, x.d AS d, COALESCE(y.m, 0) AS mp, COALESCE(y.d, 0) AS dp
    FROM task_completion x JOIN assignment a ON a.user_id = x.user_id
    LEFT JOIN task_completion y ON y.post = 0 AND y.user_id = x.user_id
    WHERE x.post = 1 AND x.d > 0
    UNION ALL
    SELECT 'output_tokens', a.variant, x.m, x.d, COALESCE(y.m, 0), COALESCE(y.d, 0)
    FROM output_tokens x JOIN assignment a ON a.user_id = x.user_id
    LEFT JOIN output_tokens y ON y.post = 0 AND y.user_id = x.user_id AND y.d > 0
    WHERE x.post = 1 AND x.d > 0
),
variants AS (
    SELECT variant, COUNT(*) AS assigned_users FROM assignment GROUP BY variant
),
metrics AS (SELECT 'task_completion' AS metric UNION ALL SELECT 'output_tokens')
SELECT (SELECT experiment FROM params) AS experiment, v.variant AS variant, k.metric AS metric,
       v.assigned_users AS assigned_users, COUNT(u.m) AS users,
       COALESCE(SUM(u.m), 0) AS sum, COALESCE(SUM(u.m * u.m), 0) AS sum_squares,
       COALESCE(SUM(u.d), 0) AS units, COALESCE(SUM(u.d * u.d), 0) AS units_squares,
       COALESCE(SUM(u.m * u.d), 0) AS sum_units_products,
       COALESCE(SUM(u.mp), 0) AS pre_sum, COALESCE(SUM(u.mp * u.mp), 0) AS pre_sum_squares,
       COALESCE(SUM(u.dp), 0) AS pre_units, COALESCE(SUM(u.dp * u.dp), 0) AS pre_units_squares,
       COALESCE(SUM(u.mp * u.dp), 0) AS pre_sum_pre_units_products, COALESCE(SUM(u.m * u.mp), 0) AS sum_pre_sum_products,
       COALESCE(SUM(u.d * u.dp), 0) AS units_pre_units_products, COALESCE(SUM(u.m * u.dp), 0) AS sum_pre_units_products,
       COALESCE(SUM(u.d * u.mp), 0) AS units_pre_sum_products
FROM variants v CROSS JOIN metrics k
LEFT JOIN per_user u ON u.variant = v.variant AND u.metric = k.metric
GROUP BY v.variant, k.metric, v.assigned_users
ORDER BY v.variant, k.metric
SETTINGS join_use_nulls = 1
