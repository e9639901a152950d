//! xdpwall: an XDP packet filter with live, atomic rule updates.
//!
//! Data flows one way: a rule file is read into the [`rules`] model, [`compile`]d into lookup
//! tables, and the [`loader`] writes those into the kernel maps the XDP program reads. The
//! [`model`] is the independent reference every kernel verdict is checked against.
#![deny(missing_docs)]

pub mod addr_table;
pub mod compile;
pub mod features;
pub mod loader;
pub mod model;
pub mod netns;
pub mod ranges;
pub mod rules;
pub mod service;
pub mod trace;

pub use loader::{Filter, LoadError, Maps, Mode};
pub use model::{verdict, Cause, Model, Verdict};
pub use rules::{
    Action, AddrMatch, AddrSet, PortRange, RateLimit, Rule, RuleAction, RuleError, RuleSet,
};
