-- The catalog is global; every tenant-owned table has tenant_id as the leading column of its
-- primary key, so that the tables can be distributed by tenant. Keys compare byte-wise
-- (COLLATE "C"), as in the SQLite schema.

-- The one row saying which catalog is stored and how often the inventory changed.
CREATE TABLE catalog_state (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    generation BIGINT NOT NULL,
    as_of      DATE,
    inventory  BIGINT NOT NULL
);
INSERT INTO catalog_state (generation, as_of, inventory) VALUES (0, NULL, 0);

-- One row per imported MSRC document; a newer revision of a document replaces the older one.
CREATE TABLE documents (
    id              TEXT COLLATE "C" PRIMARY KEY,
    title           TEXT NOT NULL,
    initial_release TIMESTAMP(0) NOT NULL,
    current_release TIMESTAMP(0) NOT NULL
);

-- Vendor fixes of a document, grouped per (KB, product, sub type, fixed build, supersedence)
-- with the space-separated vulnerability ids they fix, in the order they are read back.
CREATE TABLE document_fixes (
    document_id   TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    kb            BIGINT NOT NULL,
    product_id    TEXT NOT NULL,
    product_name  TEXT NOT NULL,
    sub_type      TEXT,
    fixed_build   TEXT,
    supersedence  TEXT,
    cves          TEXT NOT NULL,
    PRIMARY KEY (document_id, position)
);
CREATE INDEX document_fixes_kb ON document_fixes (kb);

-- Per KB: its release document (the one citing it for the most CVEs) and catalog URL.
CREATE TABLE catalog_kbs (
    kb           BIGINT PRIMARY KEY,
    name         TEXT NOT NULL,
    document_id  TEXT NOT NULL,
    release_date DATE NOT NULL,
    url          TEXT NOT NULL
);

CREATE TABLE machines (
    tenant_id       TEXT COLLATE "C" NOT NULL,
    machine_id      TEXT COLLATE "C" NOT NULL,
    -- Unix seconds.
    last_seen       BIGINT NOT NULL,
    snapshot        TEXT NOT NULL,
    -- True while the machine is active and its results are included in the counts.
    counted         BOOLEAN NOT NULL,
    pending_restart BOOLEAN NOT NULL,
    PRIMARY KEY (tenant_id, machine_id)
);
-- The sweep looks for counted machines not seen since a time.
CREATE INDEX machines_counted_last_seen ON machines (last_seen) WHERE counted;

CREATE TABLE machine_software (
    tenant_id     TEXT COLLATE "C" NOT NULL,
    machine_id    TEXT COLLATE "C" NOT NULL,
    software      TEXT COLLATE "C" NOT NULL,
    indeterminate BOOLEAN NOT NULL,
    PRIMARY KEY (tenant_id, machine_id, software)
);
-- The indeterminate machines of a tenant's software.
CREATE INDEX machine_software_indeterminate ON machine_software (tenant_id, software, machine_id)
    WHERE indeterminate;

CREATE TABLE machine_missing (
    tenant_id  TEXT COLLATE "C" NOT NULL,
    machine_id TEXT COLLATE "C" NOT NULL,
    software   TEXT COLLATE "C" NOT NULL,
    kb         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, machine_id, software, kb)
);

-- Active machines per software: a software is known to a tenant while this is above zero.
CREATE TABLE software_counts (
    tenant_id TEXT COLLATE "C" NOT NULL,
    software  TEXT COLLATE "C" NOT NULL,
    machines  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, software)
);

-- machineMissedOn per (tenant, software, KB), maintained with every change.
CREATE TABLE missing_counts (
    tenant_id TEXT COLLATE "C" NOT NULL,
    software  TEXT COLLATE "C" NOT NULL,
    kb        BIGINT NOT NULL,
    machines  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, software, kb)
);
