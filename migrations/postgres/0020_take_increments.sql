-- A publish's one statement (src/store/postgres/batch/unfiltered.rs) draws its webhooks'
-- increment ids through this function: for each webhook, in ascending id (the lock order of
-- every publish), it bumps `increment_id` by the count given, if the webhook is still active
-- and unfiltered, and returns the ids drawn (`base` + 1 … `base` + count).
--
-- Why a function and not a locking CTE in the statement: when another node's publish holds a
-- webhook's row lock, the waiting statement re-checks the row once the lock is free
-- (PostgreSQL's EvalPlanQual), and that re-check first sets up the executor state of every
-- part of the statement it belongs to. For the publish statement, about twenty CTEs, that cost
-- as much as the statement itself, paid while holding the lock (issue 28: a third of the
-- publish backends' CPU on two nodes). Inside the function the waiting statement is this one
-- small UPDATE, so the re-check sets up only that. Each UPDATE runs on a fresh snapshot (a
-- volatile function in READ COMMITTED), so it bumps the latest committed row.
CREATE FUNCTION hookd_take_increments(ws BIGINT[], counts BIGINT[])
RETURNS TABLE (w BIGINT, base BIGINT, m BIGINT, v BIGINT, plain BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    one RECORD;
BEGIN
    FOR one IN SELECT u.w, u.c FROM UNNEST(ws, counts) AS u(w, c) ORDER BY u.w LOOP
        UPDATE webhooks wh SET increment_id = wh.increment_id + one.c
            WHERE wh.id = one.w AND wh.is_active AND wh.filter IS NULL
            RETURNING wh.id, wh.increment_id - one.c, wh.merchant_id, wh.version,
                NOT wh.ordered AND wh.max_rate IS NULL
            INTO w, base, m, v, plain;
        IF FOUND THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
