//! `/spec`: the host's machine description in cAdvisor's `MachineInfo` JSON shape
//! (cores, frequency, memory, ids, filesystems, disks, network devices, NUMA
//! topology). The parsers are pure; [`machine_info`] reads the files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::Host;

/// cAdvisor's `MachineInfo` (the fields kubelet users read).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MachineInfo {
    pub timestamp: String,
    pub vendor_id: String,
    pub num_cores: usize,
    pub num_physical_cores: usize,
    pub num_sockets: usize,
    pub cpu_frequency_khz: u64,
    pub memory_capacity: u64,
    pub swap_capacity: u64,
    pub memory_by_type: BTreeMap<String, serde_json::Value>,
    pub hugepages: Vec<HugePages>,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub filesystems: Vec<Filesystem>,
    pub disk_map: BTreeMap<String, Disk>,
    pub network_devices: Vec<NetDevice>,
    pub topology: Vec<NumaNode>,
    pub cloud_provider: String,
    pub instance_type: String,
    pub instance_id: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HugePages {
    /// kB.
    pub page_size: u64,
    pub num_pages: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Filesystem {
    pub device: String,
    pub capacity: u64,
    #[serde(rename = "type")]
    pub fs_type: String,
    pub inodes: u64,
    pub has_inodes: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Disk {
    pub name: String,
    pub major: u64,
    pub minor: u64,
    pub size: u64,
    pub scheduler: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct NetDevice {
    pub name: String,
    pub mac_address: String,
    pub speed: i64,
    pub mtu: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct NumaNode {
    pub node_id: u32,
    pub memory: u64,
    pub hugepages: Vec<HugePages>,
    pub cores: Vec<Core>,
    pub caches: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Core {
    pub core_id: u32,
    pub thread_ids: Vec<u32>,
    pub caches: Vec<serde_json::Value>,
    pub uncore_caches: Vec<serde_json::Value>,
    pub socket_id: u32,
}

/// One logical CPU of /proc/cpuinfo.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuEntry {
    pub processor: u32,
    pub physical_id: u32,
    pub core_id: u32,
    pub vendor_id: String,
    pub mhz: Option<f64>,
}

/// Parses /proc/cpuinfo into its logical CPUs. Without `physical id`/`core id`
/// (e.g. on arm64) each CPU is its own core on socket 0.
pub fn parse_cpuinfo(text: &str) -> Vec<CpuEntry> {
    let mut cpus = Vec::new();
    let mut cur: Option<CpuEntry> = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => {
                if let Some(c) = cur.take() {
                    cpus.push(c);
                }
                let n = v.parse().unwrap_or(cpus.len() as u32);
                cur = Some(CpuEntry {
                    processor: n,
                    core_id: n,
                    ..CpuEntry::default()
                });
            }
            "physical id" => {
                if let Some(c) = cur.as_mut() {
                    c.physical_id = v.parse().unwrap_or(0);
                }
            }
            "core id" => {
                if let Some(c) = cur.as_mut() {
                    c.core_id = v.parse().unwrap_or(0);
                }
            }
            "vendor_id" | "CPU implementer" => {
                if let Some(c) = cur.as_mut() {
                    c.vendor_id = v.to_string();
                }
            }
            "cpu MHz" => {
                if let Some(c) = cur.as_mut() {
                    c.mhz = v.parse().ok();
                }
            }
            _ => {}
        }
    }
    cpus.extend(cur);
    cpus
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

/// The mount holding `path` in a mountinfo text: (device, fs type).
pub fn mount_of(mountinfo: &str, path: &Path) -> Option<(String, String)> {
    let mut best: Option<(usize, String, String)> = None;
    for line in mountinfo.lines() {
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split(' ').nth(4)?.replace("\\040", " ");
        let mut r = right.split(' ');
        let (fs_type, source) = (r.next()?, r.next()?);
        if path.starts_with(&mount_point)
            && best
                .as_ref()
                .is_none_or(|(len, ..)| mount_point.len() >= *len)
        {
            best = Some((mount_point.len(), source.to_string(), fs_type.to_string()));
        }
    }
    best.map(|(_, d, t)| (d, t))
}

/// Builds the topology: NUMA nodes (`node_cpus`: node id → its CPUs and memory;
/// empty means one node with everything) and their cores.
pub fn topology(
    cpus: &[CpuEntry],
    node_cpus: &[(u32, Vec<u32>, u64)],
    memory: u64,
) -> Vec<NumaNode> {
    let all: Vec<u32> = cpus.iter().map(|c| c.processor).collect();
    let nodes: Vec<(u32, Vec<u32>, u64)> = if node_cpus.is_empty() {
        vec![(0, all, memory)]
    } else {
        node_cpus.to_vec()
    };
    nodes
        .into_iter()
        .map(|(node_id, members, memory)| {
            let mut cores: BTreeMap<(u32, u32), Vec<u32>> = BTreeMap::new();
            for c in cpus.iter().filter(|c| members.contains(&c.processor)) {
                cores
                    .entry((c.physical_id, c.core_id))
                    .or_default()
                    .push(c.processor);
            }
            NumaNode {
                node_id,
                memory,
                hugepages: Vec::new(),
                cores: cores
                    .into_iter()
                    .map(|((socket_id, core_id), mut thread_ids)| {
                        thread_ids.sort_unstable();
                        Core {
                            core_id,
                            thread_ids,
                            caches: Vec::new(),
                            uncore_caches: Vec::new(),
                            socket_id,
                        }
                    })
                    .collect(),
                caches: Vec::new(),
            }
        })
        .collect()
}

/// The bracketed entry of a `queue/scheduler` file (`mq-deadline [none]` → `none`).
pub fn current_scheduler(text: &str) -> String {
    text.split_whitespace()
        .find_map(|s| s.strip_prefix('[').and_then(|s| s.strip_suffix(']')))
        .unwrap_or("none")
        .to_string()
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn read_num(path: &Path) -> Option<u64> {
    read_trim(path).parse().ok()
}

fn dir_names(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads the machine description from `host`. Unreadable facts stay empty/zero.
pub fn machine_info(host: &Host) -> MachineInfo {
    let cpus =
        parse_cpuinfo(&std::fs::read_to_string(host.proc.join("cpuinfo")).unwrap_or_default());
    let mem = super::host::parse_meminfo(
        &std::fs::read_to_string(host.proc.join("meminfo")).unwrap_or_default(),
    );
    let memory_capacity = mem.get("MemTotal").copied().unwrap_or(0);
    let sys = &host.sys;
    let cpu_frequency_khz = read_num(&sys.join("devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))
        .or_else(|| {
            cpus.first()
                .and_then(|c| c.mhz)
                .map(|m| (m * 1000.0) as u64)
        })
        .unwrap_or(0);

    let hugepages: Vec<HugePages> = dir_names(&sys.join("kernel/mm/hugepages"))
        .iter()
        .filter_map(|name| {
            let size = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let n = read_num(
                &sys.join("kernel/mm/hugepages")
                    .join(name)
                    .join("nr_hugepages"),
            )?;
            Some(HugePages {
                page_size: size,
                num_pages: n,
            })
        })
        .collect();

    let nodes: Vec<(u32, Vec<u32>, u64)> = dir_names(&sys.join("devices/system/node"))
        .iter()
        .filter_map(|name| {
            let id: u32 = name.strip_prefix("node")?.parse().ok()?;
            let dir = sys.join("devices/system/node").join(name);
            let cpus = parse_cpu_list(&read_trim(&dir.join("cpulist")));
            let meminfo = std::fs::read_to_string(dir.join("meminfo")).unwrap_or_default();
            // "Node 0 MemTotal:  123 kB"
            let memory = meminfo
                .lines()
                .find(|l| l.contains("MemTotal:"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024);
            Some((id, cpus, memory))
        })
        .collect();

    let mountinfo = std::fs::read_to_string(host.proc.join("self/mountinfo")).unwrap_or_default();
    let filesystems = host
        .filesystems
        .iter()
        .filter_map(|path| {
            let (device, fs_type) = mount_of(&mountinfo, path)?;
            let st = host
                .statfs
                .as_ref()
                .and_then(|f| f(path))
                .unwrap_or_default();
            Some(Filesystem {
                device,
                capacity: st.capacity_bytes,
                fs_type,
                inodes: st.inodes,
                has_inodes: st.inodes > 0,
            })
        })
        .collect();

    let disk_map = dir_names(&sys.join("block"))
        .into_iter()
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .filter_map(|name| {
            let dir = sys.join("block").join(&name);
            let dev = read_trim(&dir.join("dev"));
            let (major, minor) = dev.split_once(':')?;
            let (major, minor) = (major.parse().ok()?, minor.parse().ok()?);
            let disk = Disk {
                size: read_num(&dir.join("size")).unwrap_or(0) * 512,
                scheduler: current_scheduler(&read_trim(&dir.join("queue/scheduler"))),
                name,
                major,
                minor,
            };
            Some((dev, disk))
        })
        .collect();

    let network_devices = dir_names(&sys.join("class/net"))
        .into_iter()
        .filter(|name| {
            // Virtual devices (lo, bridges, veths) live under /sys/devices/virtual.
            std::fs::read_link(sys.join("class/net").join(name))
                .map(|t| !t.to_string_lossy().contains("/virtual/"))
                .unwrap_or(false)
        })
        .map(|name| {
            let dir = sys.join("class/net").join(&name);
            NetDevice {
                mac_address: read_trim(&dir.join("address")),
                speed: read_trim(&dir.join("speed")).parse().unwrap_or(0),
                mtu: read_num(&dir.join("mtu")).unwrap_or(0),
                name,
            }
        })
        .collect();

    let sockets: BTreeSet<u32> = cpus.iter().map(|c| c.physical_id).collect();
    let physical: BTreeSet<(u32, u32)> = cpus.iter().map(|c| (c.physical_id, c.core_id)).collect();
    MachineInfo {
        timestamp: jiff::Timestamp::now().to_string(),
        vendor_id: cpus
            .first()
            .map(|c| c.vendor_id.clone())
            .unwrap_or_default(),
        num_cores: cpus.len(),
        num_physical_cores: physical.len(),
        num_sockets: sockets.len(),
        cpu_frequency_khz,
        memory_capacity,
        swap_capacity: mem.get("SwapTotal").copied().unwrap_or(0),
        memory_by_type: BTreeMap::new(),
        hugepages,
        machine_id: [
            host.etc.join("machine-id"),
            "/var/lib/dbus/machine-id".into(),
        ]
        .iter()
        .map(|p| read_trim(p))
        .find(|s| !s.is_empty())
        .unwrap_or_default(),
        system_uuid: read_trim(&sys.join("class/dmi/id/product_uuid")),
        boot_id: read_trim(&host.proc.join("sys/kernel/random/boot_id")),
        filesystems,
        disk_map,
        network_devices,
        topology: topology(&cpus, &nodes, memory_capacity),
        cloud_provider: "Unknown".into(),
        instance_type: "Unknown".into(),
        instance_id: "None".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu MHz\t\t: 2400.000\nphysical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\ncpu MHz\t\t: 2400.000\nphysical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 2\nvendor_id\t: GenuineIntel\nphysical id\t: 0\ncore id\t\t: 1\n\nprocessor\t: 3\nvendor_id\t: GenuineIntel\nphysical id\t: 0\ncore id\t\t: 1\n";

    #[test]
    fn parses_cpuinfo_and_builds_topology() {
        let cpus = parse_cpuinfo(CPUINFO);
        assert_eq!(cpus.len(), 4);
        assert_eq!(cpus[0].vendor_id, "GenuineIntel");
        assert_eq!(cpus[0].mhz, Some(2400.0));
        let t = topology(&cpus, &[], 1 << 30);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].memory, 1 << 30);
        assert_eq!(t[0].cores.len(), 2);
        assert_eq!(t[0].cores[1].thread_ids, vec![2, 3]);
        // arm64 style: no ids, each processor its own core.
        let arm = parse_cpuinfo("processor : 0\nBogoMIPS : 50\n\nprocessor : 1\n");
        assert_eq!(topology(&arm, &[], 0)[0].cores.len(), 2);
    }

    #[test]
    fn parses_cpu_lists_mounts_and_schedulers() {
        assert_eq!(parse_cpu_list("0-2,5,7-8\n"), vec![0, 1, 2, 5, 7, 8]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
        let mi = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                  30 22 0:25 / /var/lib rw shared:2 - xfs /dev/sdb rw\n";
        assert_eq!(
            mount_of(mi, Path::new("/var/lib/bosun")),
            Some(("/dev/sdb".into(), "xfs".into()))
        );
        assert_eq!(
            mount_of(mi, Path::new("/var/log/pods")),
            Some(("/dev/sda1".into(), "ext4".into()))
        );
        assert_eq!(current_scheduler("mq-deadline [none] bfq"), "none");
    }

    #[test]
    fn reads_a_fake_host() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let w = |rel: &str, body: &str| {
            let path = p.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        };
        w("proc/cpuinfo", CPUINFO);
        w("proc/meminfo", "MemTotal: 4096 kB\nSwapTotal: 0 kB\n");
        w("proc/sys/kernel/random/boot_id", "b00t\n");
        w(
            "proc/self/mountinfo",
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
        );
        w("etc/machine-id", "abc123\n");
        w("sys/class/dmi/id/product_uuid", "uuid-1\n");
        w("sys/block/sda/dev", "8:0\n");
        w("sys/block/sda/size", "2048\n");
        w("sys/block/sda/queue/scheduler", "[mq-deadline] none\n");
        w("sys/block/loop0/dev", "7:0\n");
        w("sys/devices/pci/net/eth0/address", "02:00:00:00:00:01\n");
        w("sys/devices/pci/net/eth0/mtu", "1500\n");
        w("sys/devices/virtual/net/lo/mtu", "65536\n");
        std::fs::create_dir_all(p.join("sys/class/net")).unwrap();
        std::os::unix::fs::symlink("../../devices/pci/net/eth0", p.join("sys/class/net/eth0"))
            .unwrap();
        std::os::unix::fs::symlink("../../devices/virtual/net/lo", p.join("sys/class/net/lo"))
            .unwrap();
        w("sys/devices/system/node/node0/cpulist", "0-3\n");
        w(
            "sys/devices/system/node/node0/meminfo",
            "Node 0 MemTotal:       4096 kB\n",
        );
        let host = Host {
            proc: p.join("proc"),
            sys: p.join("sys"),
            etc: p.join("etc"),
            filesystems: vec!["/var/lib".into()],
            statfs: Some(std::sync::Arc::new(|_: &Path| {
                Some(super::super::FsStats {
                    capacity_bytes: 100,
                    inodes: 10,
                    ..Default::default()
                })
            })),
        };
        let m = machine_info(&host);
        assert_eq!(m.num_cores, 4);
        assert_eq!(m.num_physical_cores, 2);
        assert_eq!(m.num_sockets, 1);
        assert_eq!(m.cpu_frequency_khz, 2_400_000);
        assert_eq!(m.memory_capacity, 4096 * 1024);
        assert_eq!(m.machine_id, "abc123");
        assert_eq!(m.system_uuid, "uuid-1");
        assert_eq!(m.boot_id, "b00t");
        assert_eq!(m.disk_map.len(), 1);
        assert_eq!(m.disk_map["8:0"].size, 2048 * 512);
        assert_eq!(m.disk_map["8:0"].scheduler, "mq-deadline");
        assert_eq!(m.network_devices.len(), 1);
        assert_eq!(m.network_devices[0].mac_address, "02:00:00:00:00:01");
        assert_eq!(m.topology[0].memory, 4096 * 1024);
        assert_eq!(m.filesystems[0].device, "/dev/sda1");
        assert_eq!(m.filesystems[0].capacity, 100);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["filesystems"][0]["type"], "ext4");
        assert_eq!(json["cloud_provider"], "Unknown");
    }
}
