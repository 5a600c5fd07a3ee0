-- scripts/sql/summary.sql for PostgreSQL (12 or later), on a copy of Bakeoff's events table with the same
-- columns (`line` as text or jsonb). The same query, clause for clause; what differs:
--   parameters       psql variables :'experiment' and :'start' instead of :experiment and :start
--   JSON             (line::jsonb ->> 'key') instead of json_extract(line, '$.key'); a true/false value is
--                    turned into 1/0 explicitly (SQLite's json_extract does that itself)
--   time             extract(epoch FROM timestamptz) instead of strftime('%s', ...)
--   sums             COALESCE(SUM(x), 0) instead of TOTAL(x); no printf: PostgreSQL prints float8 exactly
--                    (shortest round-trip digits) and integer sums as exact numerics
--
--   PGOPTIONS='-c enable_nestloop=off' psql --csv -v experiment=support-bot-v2 -v start=2026-11-08T00:00:00Z \
--       -f scripts/sql/summary.postgres.sql > summary.csv
--   (without enable_nestloop=off the planner, unable to size the CTEs, picks quadratic nested loops at scale)
WITH
params AS (
    SELECT CAST(:'experiment' AS text) AS experiment,
           CAST(extract(epoch FROM CAST(:'start' AS timestamptz)) * 1000000 AS bigint) AS start_us
),
ev AS (  -- the experiment's events, post = 1 from the start on, 0 before it
    SELECT e.id, e.ts, e.kind, e.variant, e.user_id, e.conversation_id, e.request_id, CAST(e.line AS jsonb) AS line,
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
    SELECT f.post, f.ts, f.id,
           CASE WHEN f.request_id <> '' THEN r.conversation_id ELSE f.conversation_id END AS conversation_id,
           CASE jsonb_typeof(f.line -> 'value') WHEN 'boolean' THEN CAST(CAST(f.line ->> 'value' AS boolean) AS integer)
                ELSE CAST(f.line ->> 'value' AS float8) END AS value
    FROM ev f LEFT JOIN req r ON r.post = f.post AND r.request_id = f.request_id
    WHERE f.kind = 'feedback' AND f.line ->> 'name' = 'task_completed'
),
task_completion AS (  -- per user: m = completed conversations, d = conversations with an outcome
    SELECT c.post, c.user_id, SUM(l.value) AS m, COUNT(*) AS d
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
    SELECT post, user_id, SUM(CAST(line ->> 'output_tokens' AS float8)) AS m,
           COUNT(line ->> 'output_tokens') AS d
    FROM req GROUP BY post, user_id
),
per_user AS (  -- one row per (metric, analysed user with a unit): post m, d and pre-period mp, dp (0 without)
    SELECT 'task_completion' AS metric, a.variant, x.m, x.d, COALESCE(y.m, 0) AS mp, COALESCE(y.d, 0) AS dp
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
metrics(metric) AS (VALUES ('task_completion'), ('output_tokens'))
SELECT (SELECT experiment FROM params) AS experiment, v.variant, k.metric, v.assigned_users, COUNT(u.m) AS users,
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
ORDER BY v.variant, k.metric;
