//! The bosun agent: kubelet, container runtime, pod network and service proxy.
//! Only a skeleton so far; the runtime issue fills it in. [`hollow`] runs
//! simulated nodes for scale tests.

pub mod hollow;
pub mod runtime;

/// What the agent can do today, for `bosun agent` to report honestly.
pub const STATUS: &str = "the agent is not built yet: see the agent runtime issue";
