-- A publish batch's one round trip (src/store/postgres/batch/unfiltered.rs) as a function of
-- a few small statements instead of one statement of about twenty CTEs (issue 28). The work
-- and its answer are the same; what changes is its cost. PostgreSQL sets up and tears down
-- the executor state of every part of a statement on every call: about ninety plan nodes for
-- the one statement, many of them for parts a given batch does not need (no job to check
-- against the catalog or a remembered key, no payload to hand over). Here the checks a batch
-- does not need are not run, the numbering is done in the function's own loop, and what is
-- left is a handful of statements with small cached plans: timed alone (bench/pg_replay.sh),
-- a call takes a third less than the statement for one event and a sixth less for eleven.
--
-- Steps, each statement on a fresh snapshot (a volatile function in READ COMMITTED):
-- 1. the refused jobs, when some job asks for the check: catalog versions moved (`stale`),
--    remembered keys changed (`revoked`);
-- 2. the active webhooks the jobs match, as pairs of webhook and job (`mw`, `mn`, in
--    ascending webhook id, then job), and whether any has a filter; when a job is refused or a
--    matched webhook has a filter, nothing is written (`ok` false) and the node goes the long
--    way;
-- 3. per matched webhook, in ascending id (the lock order of every publish), one small UPDATE
--    bumps its increment id by its payloads' count; after a lock wait it re-checks the
--    webhook on its current row (see migration 0020, why the waiting statement is kept
--    small), and a webhook turned off, deleted or given a filter meanwhile aborts the call
--    (`hookd_publish_raced()`, migration 0019), undoing what it did, and the node runs the
--    batch again. Its payloads are numbered in job order after the webhook's last id, their
--    ids drawn, and the first ones of a plain webhook (neither ordered nor rate-limited)
--    leased to this node at insert (`hand`), as many as the offer's room for it;
-- 4. the events and the payloads inserted; the wake-up for webhooks with a payload not leased
--    at insert; `synchronous_commit` off for this transaction when asked.
--
-- Arguments, one element per job: merchant, topic, idempotency key, published at (node
-- clock), whether to confirm the topic's catalog version and that version, trace context,
-- remembered caller and its key hash, the topic's three match keys, the body before and after
-- the increment id. Then `shift`, how far the database's clock is ahead of the node's
-- (src/store/postgres/clock.rs; the calling statement computes it); the wake-up channel and
-- its longest payload; the hand-off's offer (the lease's owner, NULL to lease nothing; its
-- end on the node's clock; the room of a webhook not in `room_hooks`, and the webhooks with a
-- room of their own, `rooms`); whether the commit skips the WAL flush.
--
-- Answers: `ok`, the event ids (one per job), the refused jobs (1-based), each payload's job,
-- webhook, `hand` and increment id (by webhook, then job), the ids of the payloads leased at
-- insert (in the same order), and the webhooks locked with their versions (ascending id).
--
-- `hookd_take_increments` (0020) stays for nodes of the previous release during an upgrade.
CREATE FUNCTION hookd_publish(
    ms BIGINT[], topics TEXT[], keys TEXT[], ats BIGINT[], confirms BOOLEAN[], catalog BIGINT[],
    traces TEXT[], callers BIGINT[], key_hashes TEXT[], k0s TEXT[], k1s TEXT[], k2s TEXT[],
    befores BYTEA[], afters BYTEA[], shift BIGINT, channel TEXT, max_payload INT,
    owner TEXT, lease_until BIGINT, room BIGINT, room_hooks BIGINT[], rooms BIGINT[],
    unflushed BOOLEAN,
    OUT ok BOOLEAN, OUT ids BIGINT[], OUT stale BIGINT[], OUT revoked BIGINT[],
    OUT payload_jobs BIGINT[], OUT payload_hooks BIGINT[], OUT payload_hand BOOLEAN[],
    OUT payload_incs BIGINT[], OUT handed BIGINT[], OUT locked BIGINT[], OUT versions BIGINT[])
LANGUAGE plpgsql AS $$
DECLARE
    mw BIGINT[];
    mn BIGINT[];
    filtered BOOLEAN;
    pairs INT;
    i INT := 1;
    span INT;    -- the current webhook's pairs: mw[i .. i + span - 1]
    q INT;
    w BIGINT;
    base BIGINT;
    merchant BIGINT;
    version BIGINT;
    plain BOOLEAN;
    leasing BIGINT; -- how many of its payloads are leased at insert
    hand BOOLEAN;
    payload BIGINT;
    counts BIGINT[];
    payload_merchants BIGINT[] := '{}';
    delivery_ids BIGINT[] := '{}';
    woken TEXT;
BEGIN
    ids := '{}';
    locked := '{}';
    versions := '{}';
    payload_jobs := '{}';
    payload_hooks := '{}';
    payload_hand := '{}';
    payload_incs := '{}';
    handed := '{}';
    -- 1. Refused jobs.
    IF true = ANY(confirms) THEN
        SELECT array_agg(t.n ORDER BY t.n) INTO stale
        FROM UNNEST(topics, confirms, catalog) WITH ORDINALITY AS t(topic, confirm, version, n)
        LEFT JOIN topic_catalog cat ON cat.topic = t.topic
        WHERE t.confirm AND cat.version IS DISTINCT FROM t.version;
    END IF;
    IF cardinality(array_remove(callers, NULL)) > 0 THEN
        SELECT array_agg(t.n ORDER BY t.n) INTO revoked
        FROM UNNEST(callers, key_hashes) WITH ORDINALITY AS t(caller, key_hash, n)
        LEFT JOIN users u ON u.id = t.caller
        WHERE t.caller IS NOT NULL AND u.key_hash IS DISTINCT FROM t.key_hash;
    END IF;
    -- 2. Matched webhooks.
    SELECT array_agg(x.w ORDER BY x.w, x.n), array_agg(x.n ORDER BY x.w, x.n),
           coalesce(bool_or(x.filtered), false)
    INTO mw, mn, filtered
    FROM (SELECT DISTINCT wt.webhook_id AS w, t.n, wh.filter IS NOT NULL AS filtered
          FROM UNNEST(ms, k0s, k1s, k2s) WITH ORDINALITY AS t(m, k0, k1, k2, n)
          JOIN webhook_topics wt ON wt.merchant_id = t.m AND wt.pattern IN (t.k0, t.k1, t.k2)
          JOIN webhooks wh ON wh.id = wt.webhook_id AND wh.is_active) x;
    ok := stale IS NULL AND revoked IS NULL AND NOT filtered;
    IF NOT ok THEN
        RETURN;
    END IF;
    ids := ARRAY(SELECT nextval('events_id_seq'::regclass) FROM generate_series(1, cardinality(ms)));
    counts := array_fill(0::BIGINT, ARRAY[cardinality(ms)]);
    pairs := coalesce(cardinality(mw), 0);
    -- 3. Each webhook's ids, locked and bumped, and its payloads numbered.
    WHILE i <= pairs LOOP
        w := mw[i];
        span := 1;
        WHILE i + span <= pairs AND mw[i + span] = w LOOP
            span := span + 1;
        END LOOP;
        UPDATE webhooks wh SET increment_id = wh.increment_id + span
            WHERE wh.id = w AND wh.is_active AND wh.filter IS NULL
            RETURNING wh.increment_id - span, wh.merchant_id, wh.version,
                NOT wh.ordered AND wh.max_rate IS NULL
            INTO base, merchant, version, plain;
        IF NOT FOUND THEN
            PERFORM hookd_publish_raced();
        END IF;
        locked := locked || w;
        versions := versions || version;
        leasing := CASE WHEN owner IS NULL OR NOT plain THEN 0
                       ELSE coalesce(rooms[array_position(room_hooks, w)], room) END;
        FOR q IN 1 .. span LOOP
            hand := q <= leasing;
            payload := nextval('deliveries_id_seq'::regclass);
            payload_jobs := payload_jobs || mn[i + q - 1];
            payload_hooks := payload_hooks || w;
            payload_merchants := payload_merchants || merchant;
            payload_incs := payload_incs || (base + q);
            payload_hand := payload_hand || hand;
            delivery_ids := delivery_ids || payload;
            counts[mn[i + q - 1]] := counts[mn[i + q - 1]] + 1;
            IF hand THEN
                handed := handed || payload;
            END IF;
        END LOOP;
        IF span > leasing THEN
            woken := CASE WHEN woken IS NULL THEN w::TEXT ELSE woken || ',' || w END;
        END IF;
        i := i + span;
    END LOOP;
    -- 4. The writes.
    INSERT INTO events (id, merchant_id, topic, idempotency_key, payloads, created_at, traceparent)
    OVERRIDING SYSTEM VALUE
    SELECT t.id, t.m, t.topic, t.key, t.payloads, t.at, t.trace
    FROM UNNEST(ids, ms, topics, keys, ats, traces, counts) AS t(id, m, topic, key, at, trace, payloads);
    INSERT INTO deliveries (id, webhook_id, merchant_id, event_id, increment_id, topic, body,
        status, next_attempt_at, lease_owner, lease_until, created_at)
    OVERRIDING SYSTEM VALUE
    SELECT p.id, p.w, p.m, ids[p.n], p.inc, topics[p.n],
        befores[p.n] || convert_to(p.inc::TEXT, 'UTF8') || afters[p.n], 'pending',
        ats[p.n] + shift, CASE WHEN p.hand THEN owner END,
        CASE WHEN p.hand THEN lease_until + shift END, ats[p.n]
    FROM UNNEST(delivery_ids, payload_hooks, payload_merchants, payload_jobs, payload_incs,
                payload_hand) AS p(id, w, m, n, inc, hand);
    IF woken IS NOT NULL THEN
        PERFORM pg_notify(channel, CASE WHEN length(woken) > max_payload THEN '' ELSE woken END);
    END IF;
    IF unflushed THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
END
$$;
