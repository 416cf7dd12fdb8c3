//! Price-aware route selection policies (being built).
