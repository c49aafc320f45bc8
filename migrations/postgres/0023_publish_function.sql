-- A publish batch's one round trip (src/store/postgres/batch/unfiltered.rs) as a function of
-- a few small statements instead of one statement of about twenty CTEs (issue 28). The work
-- and its answer are the same; what changes is its cost: PostgreSQL sets up and tears down
-- the executor state of every part of a statement on every call, about ninety plan nodes for
-- the one statement, most of it for parts a given batch does not need (no job to check
-- against the catalog or a remembered key, no payload to hand over). Here each step is its own
-- small cached plan, and the checks a batch does not need are not run at all.
--
-- Steps, each on a fresh snapshot (a volatile function in READ COMMITTED):
-- 1. the refused jobs: catalog versions moved (`stale`), remembered keys changed (`revoked`);
-- 2. the webhooks the jobs match (pairs of webhook and job, `mw`/`mn`), the active ones among
--    them, and whether any has a filter; when a job is refused or a matched webhook has a
--    filter, nothing is written (`ok` false) and the node goes the long way;
-- 3. each matched webhook's increment ids, bumped in ascending id (the lock order of every
--    publish) by one small UPDATE each, which re-checks the webhook on its current row once a
--    lock wait ends (see migration 0020); a webhook turned off, deleted or given a filter
--    meanwhile aborts the call (`hookd_publish_raced()`, migration 0019) and the node runs the
--    batch again;
-- 4. each payload's increment id, in job order per webhook, and whether it is leased to this
--    node at insert (`hand`: a plain webhook's first ones, as many as its room);
-- 5. the events and the payloads, inserted with ids drawn first, so the payloads leased at
--    insert are known without reading the insert back; the wake-up for webhooks with a payload
--    not leased at insert; `synchronous_commit` off for this transaction when asked.
--
-- Arguments, one element per job: merchant, topic, idempotency key, published at (node
-- clock), whether to confirm the topic's catalog version and that version, trace context,
-- remembered caller and its key hash, the topic's three match keys, the body before and after
-- the increment id. Then `shift`, how far the database's clock is ahead of the node's
-- (src/store/postgres/clock.rs, computed in the calling statement); the wake-up channel and
-- its longest payload; the hand-off's offer (lease owner, NULL to lease nothing; the lease's
-- end on the node's clock; the room of a webhook not in `room_hooks`, and the webhooks with a
-- room of their own); whether the commit skips the WAL flush.
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
    active BIGINT[];
    filtered BOOLEAN;
    one RECORD;
    base BIGINT;
    bases BIGINT[] := '{}';
    merchant BIGINT;
    merchants BIGINT[] := '{}';
    version BIGINT;
    plain BOOLEAN;
    plains BOOLEAN[] := '{}';
    payload_merchants BIGINT[];
    delivery_ids BIGINT[];
    woken TEXT;
BEGIN
    ids := '{}';
    locked := '{}';
    versions := '{}';
    -- 1. Refused jobs.
    IF true = ANY(confirms) THEN
        SELECT array_agg(t.n ORDER BY t.n) INTO stale
        FROM UNNEST(topics, confirms, catalog) WITH ORDINALITY AS t(topic, confirm, version, n)
        LEFT JOIN topic_catalog c ON c.topic = t.topic
        WHERE t.confirm AND c.version IS DISTINCT FROM t.version;
    END IF;
    IF cardinality(array_remove(callers, NULL)) > 0 THEN
        SELECT array_agg(t.n ORDER BY t.n) INTO revoked
        FROM UNNEST(callers, key_hashes) WITH ORDINALITY AS t(caller, key_hash, n)
        LEFT JOIN users u ON u.id = t.caller
        WHERE t.caller IS NOT NULL AND u.key_hash IS DISTINCT FROM t.key_hash;
    END IF;
    -- 2. Matched webhooks.
    SELECT array_agg(x.w ORDER BY x.w, x.n), array_agg(x.n ORDER BY x.w, x.n) INTO mw, mn
    FROM (SELECT DISTINCT wt.webhook_id AS w, t.n
          FROM UNNEST(ms, k0s, k1s, k2s) WITH ORDINALITY AS t(m, k0, k1, k2, n)
          JOIN webhook_topics wt ON wt.merchant_id = t.m AND wt.pattern IN (t.k0, t.k1, t.k2)) x;
    SELECT array_agg(wh.id ORDER BY wh.id), coalesce(bool_or(wh.filter IS NOT NULL), false)
    INTO active, filtered
    FROM webhooks wh WHERE wh.id = ANY(mw) AND wh.is_active;
    ok := stale IS NULL AND revoked IS NULL AND NOT filtered;
    IF NOT ok THEN
        RETURN;
    END IF;
    ids := ARRAY(SELECT nextval('events_id_seq'::regclass) FROM generate_series(1, cardinality(ms)));
    -- 3. Increment ids, in ascending webhook id.
    FOR one IN SELECT u.w, count(*) AS c FROM UNNEST(mw) AS u(w)
               WHERE u.w = ANY(active) GROUP BY u.w ORDER BY u.w LOOP
        UPDATE webhooks wh SET increment_id = wh.increment_id + one.c
            WHERE wh.id = one.w AND wh.is_active AND wh.filter IS NULL
            RETURNING wh.increment_id - one.c, wh.merchant_id, wh.version,
                NOT wh.ordered AND wh.max_rate IS NULL
            INTO base, merchant, version, plain;
        IF NOT FOUND THEN
            PERFORM hookd_publish_raced();
        END IF;
        locked := locked || one.w;
        bases := bases || base;
        merchants := merchants || merchant;
        versions := versions || version;
        plains := plains || plain;
    END LOOP;
    -- 4. Each payload's increment id and lease, by job, then webhook.
    SELECT array_agg(p.n ORDER BY p.n, p.w), array_agg(p.w ORDER BY p.n, p.w),
           array_agg(p.m ORDER BY p.n, p.w), array_agg(p.inc ORDER BY p.n, p.w),
           array_agg(p.hand ORDER BY p.n, p.w)
    INTO payload_jobs, payload_hooks, payload_merchants, payload_incs, payload_hand
    FROM (SELECT x.w, x.n, l.m, l.base + x.k AS inc,
                 owner IS NOT NULL AND l.plain AND x.k <= coalesce(r.r, room) AS hand
          FROM (SELECT u.w, u.n, row_number() OVER (PARTITION BY u.w ORDER BY u.n) AS k
                FROM UNNEST(mw, mn) AS u(w, n)) x
          JOIN UNNEST(locked, bases, merchants, plains) AS l(w, base, m, plain) ON l.w = x.w
          LEFT JOIN UNNEST(room_hooks, rooms) AS r(w, r) ON r.w = x.w) p;
    -- 5. The writes.
    delivery_ids := ARRAY(SELECT nextval('deliveries_id_seq'::regclass)
                          FROM generate_series(1, coalesce(cardinality(payload_jobs), 0)));
    INSERT INTO events (id, merchant_id, topic, idempotency_key, payloads, created_at, traceparent)
    OVERRIDING SYSTEM VALUE
    SELECT ids[t.n], t.m, t.topic, t.key, coalesce(c.c, 0), t.at, t.trace
    FROM UNNEST(ms, topics, keys, ats, traces) WITH ORDINALITY AS t(m, topic, key, at, trace, n)
    LEFT JOIN (SELECT u.n, count(*) AS c FROM UNNEST(payload_jobs) AS u(n) GROUP BY u.n) c
      ON c.n = t.n;
    INSERT INTO deliveries (id, webhook_id, merchant_id, event_id, increment_id, topic, body,
        status, next_attempt_at, lease_owner, lease_until, created_at)
    OVERRIDING SYSTEM VALUE
    SELECT p.id, p.w, p.m, ids[p.n], p.inc, topics[p.n],
        befores[p.n] || convert_to(p.inc::TEXT, 'UTF8') || afters[p.n], 'pending',
        ats[p.n] + shift, CASE WHEN p.hand THEN owner END,
        CASE WHEN p.hand THEN lease_until + shift END, ats[p.n]
    FROM UNNEST(delivery_ids, payload_hooks, payload_merchants, payload_jobs, payload_incs,
                payload_hand) AS p(id, w, m, n, inc, hand);
    handed := ARRAY(SELECT u.id FROM UNNEST(delivery_ids, payload_hand) WITH ORDINALITY AS u(id, hand, o)
                    WHERE u.hand ORDER BY u.o);
    SELECT string_agg(x.w::TEXT, ',' ORDER BY x.w) INTO woken
    FROM (SELECT DISTINCT u.w FROM UNNEST(payload_hooks, payload_hand) AS u(w, hand) WHERE NOT u.hand) x;
    IF woken IS NOT NULL THEN
        PERFORM pg_notify(channel, CASE WHEN length(woken) > max_payload THEN '' ELSE woken END);
    END IF;
    IF unflushed THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
END
$$;
