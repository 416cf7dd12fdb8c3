//! `babelctl simulate`: runs a deterministic mesh simulation (being built).
