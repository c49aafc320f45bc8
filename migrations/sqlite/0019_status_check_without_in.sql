-- `deliveries.status`'s CHECK said `status IN ('pending', 'retrying', 'success', 'failed',
-- 'canceled')`. SQLite evaluates an IN list of more than two constants by filling a temporary
-- b-tree each time a statement runs, and every payload insert and outcome update checks it:
-- two temporary b-trees per published-and-delivered event, about 5 % of hookd's instructions
-- (docs/performance.md). The same rule as a chain of equalities compiles to comparisons.
--
-- SQLite cannot alter a CHECK, and rebuilding `deliveries` would copy every payload. The
-- constraint is rewritten in place instead, with the procedure SQLite documents for
-- constraint-only changes (https://www.sqlite.org/lang_altertable.html, "making other kinds
-- of table schema changes"): every stored row satisfies the new CHECK, which allows exactly
-- the same values. The migration runner then raises `schema_version`, which makes every
-- connection, its own included, read the schema again.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql,
       'CHECK (status IN (''pending'', ''retrying'', ''success'', ''failed'', ''canceled''))',
       'CHECK (status = ''pending'' OR status = ''retrying'' OR status = ''success'' OR status = ''failed'' OR status = ''canceled'')')
 WHERE type = 'table' AND name = 'deliveries';
PRAGMA writable_schema = OFF;
