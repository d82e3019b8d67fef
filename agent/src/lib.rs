//! The bosun agent: the kubelet and its container runtime in one process.
//!
//! - [`daemon`]: `bosun agent` — wires everything below together.
//! - [`join`]: the node's credentials, from a join token; [`node`]: the Node
//!   object, its conditions and Lease.
//! - [`kubelet`]: pod workers that keep the node's pods running and report status.
//! - [`runtime`]: the kernel boundary — sandboxes, containers (through a small
//!   per-container supervisor, the shim), cgroups, CRI log files.
//! - [`image`]: the content-addressed local image store.
//! - [`server`] and [`logs`]: the :10250 and :10255 ports and log reading.
//! - [`hollow`]: simulated nodes for scale tests.
//!
//! The pod network and the service proxy come with their own issues.

pub mod daemon;
pub mod hollow;
pub mod image;
pub mod join;
pub mod kubelet;
pub mod logs;
pub mod network;
pub mod node;
pub mod runtime;
pub mod server;

/// An error and its causes on one line, for logs and status messages.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        line.push_str(": ");
        line.push_str(&s.to_string());
        source = s.source();
    }
    line
}
