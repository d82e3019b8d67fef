//! The bosun agent: kubelet, container runtime, pod network and service proxy.
//! Only a skeleton so far; the runtime issue fills it in. [`join`] gets the
//! node's credentials, [`node`] registers and heartbeats its Node. [`hollow`]
//! runs simulated nodes for scale tests.

pub mod hollow;
pub mod image;
pub mod join;
pub mod kubelet;
pub mod logs;
pub mod node;
pub mod runtime;
pub mod server;

/// What the agent can do today, for `bosun agent` to report honestly.
pub const STATUS: &str = "the agent is not built yet: see the agent runtime issue";
