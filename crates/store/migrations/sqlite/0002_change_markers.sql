-- The write that last stored each machine's snapshot: the inventory counter (catalog_meta
-- 'inventory') after that write, so no two writes share one. A catalog import compares it
-- with the value it read to find the machines that changed while it re-evaluated them.
-- Machines stored before this migration count as written by write 0.
ALTER TABLE machines ADD COLUMN write_seq INTEGER NOT NULL DEFAULT 0;
