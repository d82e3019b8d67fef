//! A cluster of N simulated hosts on one machine, the harness every multi-host
//! end-to-end test uses: a test switch (a bridge `sw` inside a network namespace
//! of its own), N hosts (each a network namespace whose `eth0` is a veth port on
//! that switch, address `10.253.<s>.<10+i>/24`), a master on host 0 and an agent
//! with its own data dir on every host (node names `node-0` … `node-<N-1>`).
//! Dropping the cluster stops the agents (removing what their pods left), the
//! master, the hosts and the switch — in that order, also when a test panics.
//! The machine's own network namespace is never touched.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use super::host::{run, unique, Agent, TestHost};
use super::Master;

static NEXT_SWITCH: AtomicU32 = AtomicU32::new(0);

/// The test switch: a network namespace holding one bridge, `sw`.
pub struct Switch {
    pub name: String,
    /// The /24 its hosts get addresses from: `10.253.<subnet>.0/24`.
    pub subnet: u32,
    ports: AtomicU32,
}

impl Switch {
    pub fn new() -> Switch {
        let name = unique("s");
        run(Command::new("ip").args(["netns", "add", &name]));
        let sw = Switch {
            name,
            subnet: NEXT_SWITCH.fetch_add(1, Ordering::Relaxed) % 250 + 1,
            ports: AtomicU32::new(0),
        };
        run(Command::new("ip").args(["-n", &sw.name, "link", "add", "sw", "type", "bridge"]));
        run(Command::new("ip").args(["-n", &sw.name, "link", "set", "sw", "up"]));
        sw
    }

    /// A new host plugged into this switch, with the next address.
    pub fn host(&self) -> TestHost {
        let port = self.ports.fetch_add(1, Ordering::Relaxed);
        let ip = format!("10.253.{}.{}", self.subnet, 10 + port);
        let host = TestHost::bare(ip);
        let port_name = format!("p{port}");
        run(Command::new("ip").args([
            "-n", &self.name, "link", "add", &port_name, "type", "veth", "peer", "name", "eth0",
            "netns", &host.name,
        ]));
        run(Command::new("ip").args([
            "-n", &self.name, "link", "set", &port_name, "master", "sw", "up",
        ]));
        host.address_eth0("24");
        host
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A master and `n` agents on `n` hosts of one switch.
pub struct Cluster {
    // Field order is drop order: agents first (their pods' mounts and cgroups),
    // then the master, then the hosts, then the switch.
    pub agents: Vec<Agent>,
    pub master: Master,
    pub hosts: Vec<TestHost>,
    pub switch: Switch,
}

impl Cluster {
    /// Starts the master on host 0 and an agent on every host, and waits until
    /// every node is Ready.
    pub fn new(n: usize) -> Cluster {
        Self::with_master_args(n, &[])
    }

    pub fn with_master_args(n: usize, master_args: &[&str]) -> Cluster {
        assert!(n >= 1);
        let switch = Switch::new();
        let hosts: Vec<TestHost> = (0..n).map(|_| switch.host()).collect();
        let master = Master::start_in(&hosts[0], master_args);
        let agents = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| Agent::start(&master, h, &format!("node-{i}")))
            .collect();
        let cluster = Cluster {
            agents,
            master,
            hosts,
            switch,
        };
        cluster.wait_nodes_ready();
        cluster
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.master.kubectl(args)
    }

    /// Waits until every agent's node is Ready.
    pub fn wait_nodes_ready(&self) {
        for a in &self.agents {
            self.master.wait_node_ready(&a.node_name);
        }
    }

    /// The host agent `i` runs on.
    pub fn host_of(&self, node: &str) -> &TestHost {
        let i = self
            .agents
            .iter()
            .position(|a| a.node_name == node)
            .unwrap_or_else(|| panic!("no node {node}"));
        &self.hosts[i]
    }

    /// Everything the agents logged, for assertion messages.
    pub fn logs(&self) -> String {
        let mut s = format!("--- master\n{}", self.master.log_text());
        for a in &self.agents {
            s.push_str(&format!("\n--- agent {}\n{}", a.node_name, a.log_text()));
        }
        s
    }
}
