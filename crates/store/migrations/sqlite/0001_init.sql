-- The catalog is global; every tenant-owned table has tenant_id as its leading key.

CREATE TABLE catalog_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per imported MSRC document; a newer revision of a document replaces the older one.
CREATE TABLE documents (
    id              TEXT PRIMARY KEY,
    title           TEXT NOT NULL,
    initial_release TEXT NOT NULL,
    current_release TEXT NOT NULL
);

-- Vendor fixes of a document, grouped per (KB, product, sub type, fixed build, supersedence)
-- with the space-separated vulnerability ids they fix.
CREATE TABLE document_fixes (
    document_id   TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    kb            INTEGER NOT NULL,
    product_id    TEXT NOT NULL,
    product_name  TEXT NOT NULL,
    sub_type      TEXT,
    fixed_build   TEXT,
    supersedence  TEXT,
    cves          TEXT NOT NULL
);
CREATE INDEX document_fixes_document ON document_fixes (document_id);
CREATE INDEX document_fixes_kb ON document_fixes (kb);

-- Per KB: its release document (the one citing it for the most CVEs) and catalog URL.
CREATE TABLE catalog_kbs (
    kb           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    document_id  TEXT NOT NULL,
    release_date TEXT NOT NULL,
    url          TEXT NOT NULL
);

CREATE TABLE machines (
    tenant_id       TEXT NOT NULL,
    machine_id      TEXT NOT NULL,
    last_seen       INTEGER NOT NULL,
    snapshot        TEXT NOT NULL,
    -- 1 while the machine is active and its results are included in the counts.
    counted         INTEGER NOT NULL,
    pending_restart INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, machine_id)
);
CREATE INDEX machines_counted_last_seen ON machines (counted, last_seen);

CREATE TABLE machine_software (
    tenant_id     TEXT NOT NULL,
    machine_id    TEXT NOT NULL,
    software      TEXT NOT NULL,
    indeterminate INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, machine_id, software)
);

CREATE TABLE machine_missing (
    tenant_id  TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    software   TEXT NOT NULL,
    kb         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, machine_id, software, kb)
);

-- Active machines per software: a software is known to a tenant while this is above zero.
CREATE TABLE software_counts (
    tenant_id TEXT NOT NULL,
    software  TEXT NOT NULL,
    machines  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, software)
);

-- machineMissedOn per (tenant, software, KB), maintained with every change.
CREATE TABLE missing_counts (
    tenant_id TEXT NOT NULL,
    software  TEXT NOT NULL,
    kb        INTEGER NOT NULL,
    machines  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, software, kb)
);
