//! Sans-IO Babel engine (being built).
