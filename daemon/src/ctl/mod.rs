//! `babelctl` subcommands.

pub mod decode;
pub mod show;
pub mod simulate;
