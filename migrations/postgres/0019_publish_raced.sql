-- A publish's one statement (src/store/postgres/batch/unfiltered.rs) calls this when a webhook
-- it matched changed while the statement waited for the webhook's row lock (turned off,
-- deleted, given a filter). The error aborts the statement, and with it everything the
-- statement wrote, whether or not a transaction surrounds it; its code (HK001) tells hookd to
-- run the batch again, on a snapshot that sees the change.
CREATE FUNCTION hookd_publish_raced() RETURNS BIGINT LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a webhook the publish matched changed while the publish waited for its lock'
        USING ERRCODE = 'HK001';
END
$$;
