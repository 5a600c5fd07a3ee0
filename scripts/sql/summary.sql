-- Sufficient statistics for `bakeoff analyze --summary` from Bakeoff's event store (SQLite), one row per
-- (variant, metric), with the CUPED pre-period columns. See README, "Sufficient statistics from your warehouse".
--
--   sqlite3 -csv -header bakeoff.db \
--     ".parameter set :experiment 'support-bot-v2'" \
--     ".parameter set :start '2026-11-08T00:00:00Z'" \
--     ".read scripts/sql/summary.sql" > summary.csv
--
-- :experiment  the experiment's name
-- :start       when the experiment started (ISO 8601, UTC): events from then on are analysed; earlier events of
--              the same users form the pre-period (CUPED). Give the first event's time for no pre-period.
--
-- The same definitions as `bakeoff analyze` on the events from :start on (a user is in the variant of their first
-- request by time; QA events are left out; a request id counts once; a conversation belongs to the user of its
-- first stored request; feedback names its conversation directly or through a request, and the last one by time,
-- then by storage order, counts), each period read on its own. Metrics:
--   task_completion  conversation level, proportion: last "task_completed" feedback per conversation
--   output_tokens    request level, mean: "output_tokens" of each request that has it
-- Add a metric as one more per-user CTE (user_id, post, m, d) and one more UNION ALL branch in `per_user`.
WITH
params AS (
    SELECT :experiment AS experiment, CAST(strftime('%s', :start) AS INTEGER) * 1000000 AS start_us
),
ev AS (  -- the experiment's events, post = 1 from the start on, 0 before it
    SELECT e.id, e.ts, e.kind, e.variant, e.user_id, e.conversation_id, e.request_id, e.line,
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
           json_extract(f.line, '$.value') AS value
    FROM ev f LEFT JOIN req r ON r.post = f.post AND r.request_id = f.request_id
    WHERE f.kind = 'feedback' AND json_extract(f.line, '$.name') = 'task_completed'
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
    SELECT post, user_id, SUM(json_extract(line, '$.output_tokens')) AS m,
           COUNT(json_extract(line, '$.output_tokens')) AS d
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
metrics(metric) AS (VALUES ('task_completion'), ('output_tokens')),
sums AS (  -- a row for every (variant, metric), zeros where no user has a unit
    SELECT v.variant, k.metric, v.assigned_users, COUNT(u.m) AS users,
           TOTAL(u.m) AS sum, TOTAL(u.m * u.m) AS sum_squares,
           TOTAL(u.d) AS units, TOTAL(u.d * u.d) AS units_squares, TOTAL(u.m * u.d) AS sum_units_products,
           TOTAL(u.mp) AS pre_sum, TOTAL(u.mp * u.mp) AS pre_sum_squares,
           TOTAL(u.dp) AS pre_units, TOTAL(u.dp * u.dp) AS pre_units_squares,
           TOTAL(u.mp * u.dp) AS pre_sum_pre_units_products, TOTAL(u.m * u.mp) AS sum_pre_sum_products,
           TOTAL(u.d * u.dp) AS units_pre_units_products, TOTAL(u.m * u.dp) AS sum_pre_units_products,
           TOTAL(u.d * u.mp) AS units_pre_sum_products
    FROM variants v CROSS JOIN metrics k
    LEFT JOIN per_user u ON u.variant = v.variant AND u.metric = k.metric
    GROUP BY v.variant, k.metric
)
-- printf('%!.17g'): the sqlite3 shell prints REAL values with 15 digits; 17 keep every double exact.
SELECT (SELECT experiment FROM params) AS experiment, variant, metric, assigned_users, users,
       printf('%!.17g', sum) AS sum, printf('%!.17g', sum_squares) AS sum_squares,
       printf('%!.17g', units) AS units, printf('%!.17g', units_squares) AS units_squares,
       printf('%!.17g', sum_units_products) AS sum_units_products,
       printf('%!.17g', pre_sum) AS pre_sum, printf('%!.17g', pre_sum_squares) AS pre_sum_squares,
       printf('%!.17g', pre_units) AS pre_units, printf('%!.17g', pre_units_squares) AS pre_units_squares,
       printf('%!.17g', pre_sum_pre_units_products) AS pre_sum_pre_units_products,
       printf('%!.17g', sum_pre_sum_products) AS sum_pre_sum_products,
       printf('%!.17g', units_pre_units_products) AS units_pre_units_products,
       printf('%!.17g', sum_pre_units_products) AS sum_pre_units_products,
       printf('%!.17g', units_pre_sum_products) AS units_pre_sum_products
FROM sums
ORDER BY variant, metric;
