//! Machine inventory: the snapshot schema clients send (`PUT /api/inventory/machines/{id}`,
//! `kbgap inventory import`), its validation, and its conversion into machine facts.

pub mod snapshot;

pub use snapshot::{parse_snapshot, parse_snapshots, Snapshot, SnapshotError};
