//! kbgap's domain model: identifiers, the Windows build and servicing-branch model, the
//! normalized catalog, machine facts and the evaluation engine. Pure: no I/O, no clocks.

pub mod build;
pub mod catalog;
pub mod cvrf;
pub mod engine;
pub mod ids;
pub mod lifecycle;
pub mod machine;
pub mod parts;
pub mod product;
pub mod servicing;

pub use build::{Branch, ProductBuild, WindowsBuild};

pub use catalog::Catalog;
pub use engine::{evaluate, evaluate_part, explain, Evaluation, Explanation};
pub use ids::{IdError, KbId, MachineId, SoftwareId, TenantId};
pub use lifecycle::Edition;
pub use machine::{KbListScope, MachineFacts, OsFacts};
pub use parts::{ComponentFacts, Part, PartKey, ProductFacts, Splitter};
pub use product::{Arch, HostOs, InstallType, Normalized, ProductClass, ProductUpdates};
