//! The `bosun` binary: parses flags and wires the libraries together. Nothing here
//! knows Kubernetes; it only calls `master`, `agent` and `api`.

mod image_pull;

use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the API server allocates many small JSON trees from every worker
/// thread, where glibc's malloc spent a quarter of the master's CPU (much of it
/// waiting on arena locks); see docs/PERF.md.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for bad flags or configuration (EX_USAGE).
const EXIT_USAGE: u8 = 64;
/// Exit code for a command this build cannot run yet (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Parser)]
#[command(
    name = "bosun",
    version,
    about = "A small, fast, Kubernetes-compatible cluster for VMs and physical Linux machines",
    after_help = "Example:\n  bosun master --data-dir /var/lib/bosun\n  kubectl --kubeconfig /var/lib/bosun/admin.kubeconfig get namespaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the master: the Kubernetes API server with its durable store.
    #[command(
        after_help = "Example:\n  bosun master --data-dir /var/lib/bosun --listen 0.0.0.0:6443 --advertise-address 10.0.0.5\n  kubectl --kubeconfig /var/lib/bosun/admin.kubeconfig get ns"
    )]
    Master(MasterArgs),
    /// Run the agent on a host: kubelet, runtime, pod network and service proxy.
    #[command(
        after_help = "Examples:\n  bosun agent --server https://10.0.0.5:6443 --token-file /etc/bosun/join-token --node-name n1 --node-ip 10.0.0.6\n  bosun agent --cleanup --data-dir /var/lib/bosun"
    )]
    Agent(AgentArgs),
    /// Run a master and an agent on this host in one process.
    #[command(after_help = "Example:\n  bosun up --data-dir /var/lib/bosun")]
    Up(DataDirArgs),
    /// Manage join tokens that let agents join the cluster.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the agent's local images: pull, import, ls, rm.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Run simulated (hollow) nodes for scale tests.
    #[command(
        after_help = "Example:\n  bosun hollow --server https://127.0.0.1:6443 --token-file /var/lib/bosun/join-token \\\n    --ca-file /var/lib/bosun/tls/ca.crt --nodes 100"
    )]
    Hollow(HollowArgs),
    /// Print bosun's version and the Kubernetes version it serves.
    #[command(after_help = "Example:\n  bosun version")]
    Version,
}

#[derive(Args)]
struct MasterArgs {
    /// Where the store, certificates and kubeconfig live.
    #[arg(long, default_value = "/var/lib/bosun")]
    data_dir: PathBuf,
    /// Address and port to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:6443")]
    listen: SocketAddr,
    /// Address that clients and agents use to reach this master (default: the listen address).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Range that Services get their cluster IPs from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// Range of pod addresses; each node gets a /NODE_CIDR_MASK_SIZE of it.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Prefix length of each node's podCIDR (/24: 253 pod addresses per node).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(8..=30))]
    node_cidr_mask_size: u8,
    /// Seconds a node may go without renewing its Lease before it is marked Unknown.
    #[arg(long, default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Seconds pods tolerate an unreachable or not-ready node before eviction.
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
}

#[derive(Args)]
struct DataDirArgs {
    /// Where bosun keeps its state.
    #[arg(long, default_value = "/var/lib/bosun")]
    data_dir: PathBuf,
}

#[derive(Args)]
struct AgentArgs {
    /// The master's URL, e.g. https://10.0.0.5:6443.
    #[arg(long, required_unless_present = "cleanup")]
    server: Option<String>,
    /// File holding a join token (from the master's DATA/join-token or `bosun token create`).
    #[arg(long, required_unless_present = "cleanup")]
    token_file: Option<PathBuf>,
    /// The cluster CA to trust for the master (default: proven by the join token).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Where the agent keeps its credentials, images and pods.
    #[arg(long, default_value = "/var/lib/bosun")]
    data_dir: PathBuf,
    /// This node's name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's address (default: the first IPv4 address of this host).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The authenticated port (logs; the master connects to it).
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// The read-only port (/healthz, /pods, /spec, /stats/summary, /metrics); 0 turns it off.
    #[arg(long, default_value_t = 10255)]
    read_only_port: u16,
    /// Where container logs go: LOG_ROOT/<ns>_<pod>_<uid>/<container>/<n>.log.
    #[arg(long, default_value = "/var/log/pods")]
    log_root: PathBuf,
    /// The cgroup under which pods go (default: bosun/<node-name>).
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// Where the cgroup hierarchies are mounted.
    #[arg(long, default_value = "/sys/fs/cgroup")]
    cgroup_root: PathBuf,
    /// Most processes (and threads) a pod may have; unlimited when not given.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pod_pids_limit: Option<i64>,
    /// The cluster's pod CIDR (the master's --cluster-cidr): traffic from pods to
    /// addresses outside it is masqueraded.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// The bridge that holds this node's pods and their gateway.
    #[arg(long, default_value = "bosun0")]
    bridge: String,
    /// The nftables table (family ip) the agent owns.
    #[arg(long, default_value = "bosun")]
    nft_table: String,
    /// Stop this agent's pods and remove what it made in the kernel (bridge,
    /// routes, nftables table, addresses), then exit. Images and credentials stay.
    #[arg(long)]
    cleanup: bool,
    #[command(flatten)]
    images: image_pull::AgentImageFlags,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a new join token and print it.
    #[command(after_help = "Example:\n  bosun token create --data-dir /var/lib/bosun")]
    Create(DataDirArgs),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import an image: an OCI layout tar or `docker save` tar, or a root filesystem directory.
    #[command(
        after_help = "Examples:\n  skopeo copy docker://busybox oci-archive:busybox.tar:busybox:latest\n  bosun image import --data-dir /var/lib/bosun busybox.tar\n  bosun image import --data-dir /var/lib/bosun --rootfs ./rootfs --tag busybox:local"
    )]
    Import(ImageImportArgs),
    /// Pull an image from a registry into the store, showing progress.
    #[command(
        after_help = "Examples:\n  bosun image pull --data-dir /var/lib/bosun busybox\n  bosun image pull --insecure-registry 10.0.0.5:5000 10.0.0.5:5000/team/app:v1"
    )]
    Pull(image_pull::ImagePullArgs),
    /// List the images in the store.
    #[command(after_help = "Example:\n  bosun image ls --data-dir /var/lib/bosun")]
    Ls(DataDirArgs),
    /// Remove images (by reference or image id); content no image uses is deleted.
    #[command(after_help = "Example:\n  bosun image rm --data-dir /var/lib/bosun busybox:local")]
    Rm(ImageRmArgs),
}

#[derive(Args)]
struct ImageImportArgs {
    /// Where the agent keeps its state (images go to DATA_DIR/content).
    #[arg(long, default_value = "/var/lib/bosun")]
    data_dir: PathBuf,
    /// The archive to import (OCI image layout tar or `docker save` tar, optionally gzipped).
    #[arg(required_unless_present = "rootfs", conflicts_with = "rootfs")]
    file: Option<PathBuf>,
    /// Make a one-layer image of this directory instead (like `docker import`); needs --tag.
    #[arg(long, requires = "tag")]
    rootfs: Option<PathBuf>,
    /// Name of the imported image, e.g. busybox:local (overrides names inside an archive).
    #[arg(long)]
    tag: Option<String>,
}

#[derive(Args)]
struct ImageRmArgs {
    /// Where the agent keeps its state.
    #[arg(long, default_value = "/var/lib/bosun")]
    data_dir: PathBuf,
    /// Image references or ids to remove.
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
struct HollowArgs {
    /// The master's URL, e.g. https://127.0.0.1:6443 (with --token-file and --ca-file).
    #[arg(long, conflicts_with = "kubeconfig")]
    server: Option<String>,
    /// File holding a join token, sent as a bearer token.
    #[arg(long, conflicts_with = "kubeconfig")]
    token_file: Option<PathBuf>,
    /// The CA certificate that signs the master's (the master's DATA/tls/ca.crt).
    #[arg(long, conflicts_with = "kubeconfig")]
    ca_file: Option<PathBuf>,
    /// A kubeconfig to use instead of --server, --token-file and --ca-file.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How many simulated nodes to run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    nodes: u32,
    /// Node names are PREFIX-0000, PREFIX-0001, …
    #[arg(long, default_value = "hollow")]
    name_prefix: String,
}

fn main() -> ExitCode {
    // The container supervisor forks: it must run before any thread exists.
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new("shim")) {
        return agent::runtime::shim::main(std::env::args_os().skip(2).collect());
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(EXIT_USAGE)
                } else {
                    ExitCode::SUCCESS
                };
            }
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ");
            eprintln!("bosun: {first} (see bosun --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_tracing();
    match cli.command {
        Command::Master(a) => run_master(a),
        Command::Token(TokenCommand::Create(a)) => {
            match master::auth::create_join_token(&a.data_dir) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail("bosun token create", &e),
            }
        }
        Command::Version => {
            println!(
                "bosun {} (Kubernetes API v{}.{})",
                env!("CARGO_PKG_VERSION"),
                master::apiserver::KUBE_MAJOR,
                master::apiserver::KUBE_MINOR
            );
            ExitCode::SUCCESS
        }
        Command::Agent(a) => run_agent(a),
        Command::Up(_) => unavailable(
            "up",
            "`bosun up` is not built yet: run `bosun master` and `bosun agent`",
        ),
        Command::Image(c) => run_image(c),
        Command::Hollow(a) => run_hollow(a),
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BOSUN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn unavailable(cmd: &str, why: &str) -> ExitCode {
    eprintln!("bosun {cmd}: {why}");
    ExitCode::from(EXIT_UNAVAILABLE)
}

/// One line: what failed and every cause, no backtrace.
fn fail(what: &str, err: &dyn std::error::Error) -> ExitCode {
    let mut line = format!("{what}: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        line.push_str(&format!(": {s}"));
        source = s.source();
    }
    eprintln!("{line}");
    ExitCode::FAILURE
}

fn run_master(a: MasterArgs) -> ExitCode {
    let opts = master::daemon::MasterOptions {
        data_dir: a.data_dir,
        listen: a.listen,
        advertise_address: a.advertise_address,
        service_cidr: a.service_cidr,
        controllers: master::controllers::Options {
            cluster_cidr: a.cluster_cidr,
            node_cidr_mask_size: a.node_cidr_mask_size,
            node_monitor_grace_period: std::time::Duration::from_secs(a.node_monitor_grace_period),
            default_unreachable_toleration_seconds: a.default_unreachable_toleration_seconds,
            ..Default::default()
        },
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail("bosun master: starting the runtime", &e),
    };
    match rt.block_on(master::daemon::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(master::daemon::MasterError::Config(msg)) => {
            eprintln!("bosun master: {msg}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => fail("bosun master", &e),
    }
}

/// mimalloc settings for the agent (and the shims it starts): commit arena
/// memory only when it is used and hand freed pages back at once. The agent is
/// idle most of the time and its resident size is what counts; see the agent
/// section of docs/PERF.md.
const AGENT_ALLOCATOR_ENV: [(&str, &str); 2] = [
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
    ("MIMALLOC_PURGE_DELAY", "0"),
];

/// mimalloc reads its options once, before `main`: the agent re-executes
/// itself with them set (once; it keeps its pid).
fn reexec_with_agent_allocator() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(AGENT_ALLOCATOR_ENV[1].0).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let err = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .envs(AGENT_ALLOCATOR_ENV)
        .exec();
    tracing::debug!(error = %err, "re-executing with the agent's allocator settings; going on without");
}

fn run_agent(a: AgentArgs) -> ExitCode {
    reexec_with_agent_allocator();
    let node_name = match a.node_name.or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_lowercase())
    }) {
        Some(n) => n,
        None => {
            eprintln!("bosun agent: cannot read the hostname: give --node-name");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let shim_exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail("bosun agent: finding its own binary", &e),
    };
    let opts = agent::daemon::AgentOptions {
        server: a.server.unwrap_or_default(),
        token_file: a.token_file.unwrap_or_default(),
        ca_file: a.ca_file,
        data_dir: a.data_dir,
        node_name,
        node_ip: a.node_ip,
        port: a.port,
        read_only_port: a.read_only_port,
        log_root: a.log_root,
        cgroup_parent: a.cgroup_parent,
        cgroup_root: a.cgroup_root,
        shim_exe,
        pod_pids_limit: a.pod_pids_limit,
        cluster_cidr: a.cluster_cidr,
        bridge: a.bridge,
        nft_table: a.nft_table,
        images: a.images.into_options(),
    };
    if a.cleanup {
        return match agent::daemon::cleanup(&opts) {
            Ok(report) => {
                println!("bosun agent: {report}");
                ExitCode::SUCCESS
            }
            Err(e) if e.is_usage() => {
                fail("bosun agent --cleanup", &e);
                ExitCode::from(EXIT_USAGE)
            }
            Err(e) => fail("bosun agent --cleanup", &e),
        };
    }
    // One thread drives the agent; the runtime's blocking calls get their own.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(16)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail("bosun agent: starting the runtime", &e),
    };
    match rt.block_on(agent::daemon::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_usage() => {
            fail("bosun agent", &e);
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => fail("bosun agent", &e),
    }
}

fn run_hollow(a: HollowArgs) -> ExitCode {
    let connect = match (a.kubeconfig, a.server, a.token_file, a.ca_file) {
        (Some(k), ..) => agent::hollow::Connect::Kubeconfig(k),
        (None, Some(server), Some(token_file), Some(ca_file)) => agent::hollow::Connect::Token {
            server,
            token_file,
            ca_file,
        },
        _ => {
            eprintln!(
                "bosun hollow: give --server, --token-file and --ca-file, or --kubeconfig (see bosun hollow --help)"
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let opts = agent::hollow::HollowOptions {
        connect,
        nodes: a.nodes as usize,
        name_prefix: a.name_prefix,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail("bosun hollow: starting the runtime", &e),
    };
    match rt.block_on(agent::hollow::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_usage() => {
            fail("bosun hollow", &e);
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => fail("bosun hollow", &e),
    }
}

fn run_image(cmd: ImageCommand) -> ExitCode {
    let cmd = match cmd {
        ImageCommand::Pull(a) => return image_pull::run(a),
        other => other,
    };
    use agent::image::{display, ImageError, ImageStore, ImportEvent};
    let image_fail = |what: &str, e: &ImageError| {
        if e.is_usage() {
            eprintln!("{what}: {e}");
            ExitCode::from(EXIT_USAGE)
        } else {
            fail(what, e)
        }
    };
    let data_dir = match &cmd {
        ImageCommand::Import(a) => &a.data_dir,
        ImageCommand::Ls(a) => &a.data_dir,
        ImageCommand::Rm(a) => &a.data_dir,
        ImageCommand::Pull(_) => return ExitCode::FAILURE, // handled above
    };
    let store = match ImageStore::open(&agent::image::store_dir(data_dir)) {
        Ok(s) => s,
        Err(e) => return image_fail("bosun image", &e),
    };
    match cmd {
        ImageCommand::Pull(_) => ExitCode::FAILURE, // handled above
        ImageCommand::Import(a) => {
            let mut progress = |e: &ImportEvent| match e {
                ImportEvent::Layer {
                    index,
                    count,
                    diff_id,
                    size,
                    reused,
                } => println!(
                    "layer {index}/{count} {} {} {}",
                    short_digest(diff_id),
                    display::human_size(*size),
                    if *reused {
                        "already present"
                    } else {
                        "unpacked"
                    }
                ),
                ImportEvent::Tagged { reference, id } => {
                    println!("imported {reference} ({})", short_digest(id))
                }
            };
            let result = match (&a.rootfs, &a.file, &a.tag) {
                (Some(rootfs), _, Some(tag)) => store
                    .import_rootfs_with(rootfs, tag, &mut progress)
                    .map(|_| ()),
                (None, Some(file), _) if !file.is_file() => {
                    eprintln!("bosun image import: {} is not a file", file.display());
                    return ExitCode::from(EXIT_USAGE);
                }
                (None, Some(file), tag) => store
                    .import_archive_with(file, tag.as_deref(), &mut progress)
                    .map(|_| ()),
                _ => {
                    eprintln!("bosun image import: give FILE, or --rootfs DIR with --tag REF (see bosun image import --help)");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => image_fail("bosun image import", &e),
            }
        }
        ImageCommand::Ls(_) => match store.list() {
            Ok(images) => {
                print!("{}", display::image_table(&images));
                ExitCode::SUCCESS
            }
            Err(e) => image_fail("bosun image ls", &e),
        },
        ImageCommand::Rm(a) => {
            for image in &a.images {
                match store.remove(image) {
                    Ok(removed) => {
                        for r in removed {
                            println!("removed {r}");
                        }
                    }
                    Err(e) => return image_fail("bosun image rm", &e),
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// `sha256:` and the first 12 hex characters.
fn short_digest(d: &str) -> String {
    d.char_indices()
        .nth("sha256:".len() + 12)
        .map_or_else(|| d.to_string(), |(i, _)| d[..i].to_string())
}
