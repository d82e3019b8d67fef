//! The `bosun` binary: parses flags and wires the libraries together. Nothing here
//! knows Kubernetes; it only calls `master`, `agent` and `api`.

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
        after_help = "Example:\n  bosun agent --server https://10.0.0.5:6443 --token-file /etc/bosun/join-token --node-name n1"
    )]
    Agent(AgentArgs),
    /// Run a master and an agent on this host in one process.
    #[command(after_help = "Example:\n  bosun up --data-dir /var/lib/bosun")]
    Up(DataDirArgs),
    /// Manage join tokens that let agents join the cluster.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the agent's local images.
    #[command(after_help = "Example:\n  bosun image import --data-dir /var/lib/bosun busybox.tar")]
    Image(ImageArgs),
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
    /// Range of pod addresses; each node gets a /24 of it.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
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
    /// The master's URL.
    #[arg(long)]
    server: Option<String>,
    /// File holding a join token (from `bosun token create`).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Where the agent keeps its state.
    #[arg(long, default_value = "/var/lib/bosun")]
    data_dir: PathBuf,
    /// This node's name.
    #[arg(long)]
    node_name: Option<String>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a new join token and print it.
    #[command(after_help = "Example:\n  bosun token create --data-dir /var/lib/bosun")]
    Create(DataDirArgs),
}

#[derive(Args)]
struct ImageArgs {
    /// What to do: import, ls or rm.
    action: String,
    #[arg(long, default_value = "/var/lib/bosun")]
    data_dir: PathBuf,
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
        Command::Agent(_) => unavailable("agent", agent::STATUS),
        Command::Up(_) => unavailable("up", "`bosun up` needs the agent, which is not built yet"),
        Command::Image(_) => unavailable("image", "image management comes with the agent runtime"),
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
