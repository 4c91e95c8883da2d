//! What the CLI's end-to-end tests share.

pub mod origin;
