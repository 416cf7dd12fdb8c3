//! `babelctl` subcommands.

pub mod decode;
