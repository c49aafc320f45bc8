-- Room on every page of deliveries for the claim's new row version (issue 28). A claim only
-- writes the lease (lease_owner, lease_until: in no index), so with free space on the page
-- PostgreSQL keeps the new version there and adds no index entries (a HOT update); with full
-- pages, as before, each claim added an entry to every one of the table's ten indexes.
-- Applies to pages written from now on.
ALTER TABLE deliveries SET (fillfactor = 70);
