//! The client side of the control protocol and the `show` formatting, shared with the operator
//! tool (crate `babelctl`, which holds its other subcommands).

pub mod show;
