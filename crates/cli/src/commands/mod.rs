//! One module per `kbgap` subcommand.

pub mod catalog;
pub mod explain;
pub mod inventory;
pub mod quickstart;
pub mod serve;
pub mod token;
