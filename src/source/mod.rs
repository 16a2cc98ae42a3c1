//! Live sources: the only code that knows netlink and `/proc` exist. Each returns plain data
//! for `model`; everything downstream works the same on a recorded snapshot.

pub mod client_trace;
pub mod diag;
pub mod files;
pub mod netns;
pub mod netstat;
pub mod pods;
pub mod procs;
pub mod sysctl;
pub mod trace;
