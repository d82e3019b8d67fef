//! `bosun image pull`: pulls one image from a registry into an agent's store,
//! showing progress — one line redrawn in place on a terminal, plain lines
//! otherwise (logs, pipes).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::image::display::{human_size, PullProgress};
use agent::image::{ImageStore, PullEvent, Puller, Reference, Registries};
use clap::Args;

/// The image flags of `bosun agent`.
#[derive(Args)]
pub struct AgentImageFlags {
    /// A registry reached over plain HTTP, HOST:PORT (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,
    /// Mirrors and credentials, in k3s's registries.yaml shape (a missing file is none).
    #[arg(long, default_value = "/etc/bosun/registries.yaml")]
    registries_file: PathBuf,
    /// Disk use (percent) above which unused images are removed.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    image_gc_high_threshold: u8,
    /// Disk use (percent) image garbage collection brings it down to.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_low_threshold: u8,
}

impl AgentImageFlags {
    pub fn into_options(self) -> agent::daemon::ImageOptions {
        agent::daemon::ImageOptions {
            insecure_registries: self.insecure_registries,
            registries_file: self.registries_file,
            gc: agent::image::gc::GcPolicy {
                high_percent: self.image_gc_high_threshold,
                low_percent: self.image_gc_low_threshold,
                ..Default::default()
            },
        }
    }
}

#[derive(Args)]
pub struct ImagePullArgs {
    /// Where the agent keeps its state (images go to DATA_DIR/content).
    #[arg(long, default_value = "/var/lib/bosun")]
    data_dir: PathBuf,
    /// A registry reached over plain HTTP, HOST:PORT (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,
    /// Mirrors and credentials, in k3s's registries.yaml shape (a missing file is none).
    #[arg(long, default_value = "/etc/bosun/registries.yaml")]
    registries_file: PathBuf,
    /// The image, e.g. busybox, 10.0.0.5:5000/team/app:v1, quay.io/x/y@sha256:…
    reference: String,
}

pub fn run(a: ImagePullArgs) -> ExitCode {
    // The agent's allocator settings: the pull's memory is what the agent's would be.
    super::reexec_with_agent_allocator();
    let reference = match Reference::parse(&a.reference) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bosun image pull: {e}");
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let registries = match Registries::load(&a.registries_file, &a.insecure_registries) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bosun image pull: {}", agent::error_chain(&e));
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let store = match ImageStore::open(&agent::image::store_dir(&a.data_dir)) {
        Ok(s) => s,
        Err(e) => return super::fail("bosun image pull", &e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::fail("bosun image pull: starting the runtime", &e),
    };
    let tty = std::io::stdout().is_terminal();
    let began = Instant::now();
    let state = Arc::new(Mutex::new((PullProgress::default(), began)));
    let shown = state.clone();
    let progress: agent::image::pull::Progress = Arc::new(move |e: &PullEvent| {
        let mut guard = shown.lock().unwrap_or_else(|p| p.into_inner());
        let (p, last) = &mut *guard;
        let line = p.update(e);
        let mut out = std::io::stdout().lock();
        if tty {
            let now = Instant::now();
            let redraw = !matches!(e, PullEvent::Bytes { .. })
                || now.duration_since(*last) >= Duration::from_millis(100);
            if redraw {
                *last = now;
                let _ = write!(out, "\r\x1b[K{}", p.line(began.elapsed().as_secs_f64()));
                let _ = out.flush();
            }
        } else if let Some(l) = line {
            let _ = writeln!(out, "{l}");
        }
    });
    println!("pulling {reference}");
    let puller = Puller::new(store, registries);
    let result = rt.block_on(puller.pull(&reference, &[], progress));
    if tty {
        println!();
    }
    let secs = began.elapsed().as_secs_f64();
    match result {
        Ok(p) => {
            let rate = if secs > 0.0 {
                (p.fetched_bytes as f64 / secs) as u64
            } else {
                0
            };
            println!(
                "pulled {} ({}) in {secs:.1}s: {} fetched in {}/{} layers ({}/s), {} unpacked",
                p.reference,
                p.repo_digest,
                human_size(p.fetched_bytes),
                p.fetched_layers,
                p.layers,
                human_size(rate),
                human_size(p.size)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bosun image pull: {e}");
            ExitCode::FAILURE
        }
    }
}
