-- The write that last stored each machine's snapshot, from a sequence (so that writes of
-- different tenants, which run side by side, never wait for each other to number theirs).
-- A catalog import compares it with the value it read to find the machines that changed
-- while it re-evaluated them. Machines stored before this migration count as written by
-- write 0; the sequence starts at 1.
ALTER TABLE machines ADD COLUMN write_seq BIGINT NOT NULL DEFAULT 0;
CREATE SEQUENCE machine_writes;
