//! `babelctl` subcommands.

pub mod decode;
pub mod keys;
pub mod replay;
pub mod settle;
pub mod show;
pub mod simulate;
pub mod web;
