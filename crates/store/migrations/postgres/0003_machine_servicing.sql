-- Machines whose Windows version, for their edition, left servicing (one row per such
-- machine, rewritten with its other results).
CREATE TABLE machine_servicing (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    machine_id  TEXT COLLATE "C" NOT NULL,
    -- Microsoft's name of the version: "Windows 10, version 1809".
    version     TEXT NOT NULL,
    -- homePro, enterpriseEducation, ltsc, iotLtsc, server; NULL when not named.
    edition     TEXT,
    -- The last day serviced, and the end of Extended Security Updates (YYYY-MM-DD).
    since       DATE NOT NULL,
    esu_until   DATE,
    -- The last cumulative update the edition was offered.
    last_kb     BIGINT,
    PRIMARY KEY (tenant_id, machine_id)
);
