//! Specification documents and golden data; see `spec/wire.md`.
