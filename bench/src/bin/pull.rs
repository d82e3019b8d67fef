//! `bench/pull`: how fast `bosun image pull` fetches an image cold, and with
//! how much memory — against `skopeo copy docker://… oci:…` of the same image
//! in the same run.
//!
//! Run by `bench/pull` inside a network namespace it made, with a local
//! `docker-registry` there. Generates a ~100 MB image of 5 layers (a busybox
//! base, then 25 MB of pseudo-random, incompressible data per layer, so sizes
//! are real), pushes it with skopeo, then alternates cold pulls: bosun into an
//! empty data dir (peak RSS from `/proc/<pid>/status` VmHWM, polled) and
//! skopeo into an empty OCI layout. Prints `name: value` lines and the ratios.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Benchmark image pulls: bosun image pull vs skopeo copy")]
struct Args {
    /// A scratch directory (made by the script).
    #[arg(long)]
    scratch: PathBuf,
    /// The registry, HOST:PORT (plain HTTP).
    #[arg(long)]
    registry: String,
    #[arg(long)]
    bosun: PathBuf,
    /// Cold pulls of each.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Layers of generated data on top of the base layer.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// MB of data per generated layer.
    #[arg(long, default_value_t = 25)]
    layer_mb: usize,
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Pseudo-random bytes (xorshift64*): incompressible, and fast to make.
fn random_file(path: &Path, bytes: usize, seed: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x = seed | 1;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = bytes;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n])?;
        left -= n;
    }
    f.flush()?;
    Ok(())
}

/// Builds the image in an OCI layout with umoci: a base layer with
/// busybox-static, then one layer per data file.
fn build_image(a: &Args, layout: &Path) -> anyhow::Result<()> {
    let image = format!("{}:bench", layout.display());
    run(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(layout))?;
    run(Command::new("umoci").args(["new", "--image", &image]))?;
    let bundle = a.scratch.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle))?;
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin"))?;
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("copying /bin/busybox")?;
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh"))?;
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle))?;
    for i in 0..a.layers {
        std::fs::remove_dir_all(&bundle)?;
        run(Command::new("umoci")
            .args(["unpack", "--image", &image])
            .arg(&bundle))?;
        random_file(
            &rootfs.join(format!("data{i}")),
            a.layer_mb << 20,
            0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
        )?;
        run(Command::new("umoci")
            .args(["repack", "--image", &image])
            .arg(&bundle))?;
    }
    std::fs::remove_dir_all(&bundle)?;
    Ok(())
}

/// The peak RSS of `pid` so far, kB (VmHWM).
fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `cmd` to completion; its wall time and peak RSS (kB, last VmHWM seen).
fn measure(cmd: &mut Command) -> anyhow::Result<(Duration, u64)> {
    let began = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id();
    let mut hwm = 0;
    loop {
        if let Some(v) = vm_hwm(pid) {
            hwm = hwm.max(v);
        }
        if let Some(status) = child.try_wait()? {
            let took = began.elapsed();
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    std::io::Read::read_to_string(&mut e, &mut err)?;
                }
                bail!("{cmd:?} failed ({status}): {err}");
            }
            return Ok((took, hwm));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if !bosun_bench::in_named_netns(Path::new("/run/netns"))? {
        bail!("run by bench/pull inside a network namespace it made, not in the machine's own");
    }
    let layout = a.scratch.join("layout");
    let t = Instant::now();
    build_image(&a, &layout)?;
    let image = format!("{}/bench/big:1", a.registry);
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:bench", layout.display()))
        .arg(format!("docker://{image}")))?;
    let manifest = run(Command::new("curl").args([
        "-sS",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("http://{}/v2/bench/big/manifests/1", a.registry),
    ]))?;
    let m: serde_json::Value = serde_json::from_str(&manifest)?;
    let layers = m["layers"].as_array().cloned().unwrap_or_default();
    let bytes: u64 = layers.iter().filter_map(|l| l["size"].as_u64()).sum();
    println!(
        "image: {image}, {} layers, {:.1} MB compressed (built and pushed in {:.1}s)",
        layers.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let (mut bosun_rate, mut bosun_rss, mut skopeo_rate, mut skopeo_rss) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..a.runs {
        let data = a.scratch.join(format!("bosun-{i}"));
        let (took, rss) = measure(
            Command::new(&a.bosun)
                .args(["image", "pull", "--data-dir"])
                .arg(&data)
                .args(["--insecure-registry", &a.registry, "--registries-file"])
                .arg(a.scratch.join("no-registries.yaml"))
                .arg(&image),
        )?;
        let rate = bytes as f64 / 1e6 / took.as_secs_f64();
        println!(
            "run {i}: bosun image pull {:.2}s {rate:.1} MB/s, peak RSS {:.1} MB",
            took.as_secs_f64(),
            rss as f64 / 1024.0
        );
        bosun_rate.push(rate);
        bosun_rss.push(rss as f64 / 1024.0);
        std::fs::remove_dir_all(&data)?;

        let out = a.scratch.join(format!("skopeo-{i}"));
        let (took, rss) = measure(
            Command::new("skopeo")
                .args(["copy", "--quiet", "--src-tls-verify=false"])
                .arg(format!("docker://{image}"))
                .arg(format!("oci:{}:big", out.display())),
        )?;
        let rate = bytes as f64 / 1e6 / took.as_secs_f64();
        println!(
            "run {i}: skopeo copy {:.2}s {rate:.1} MB/s, peak RSS {:.1} MB",
            took.as_secs_f64(),
            rss as f64 / 1024.0
        );
        skopeo_rate.push(rate);
        skopeo_rss.push(rss as f64 / 1024.0);
        std::fs::remove_dir_all(&out)?;
    }
    let (br, sr) = (median(bosun_rate), median(skopeo_rate));
    let (bm, sm) = (median(bosun_rss), median(skopeo_rss));
    println!("bosun_pull_mb_per_s: {br:.1}");
    println!("skopeo_copy_mb_per_s: {sr:.1}");
    println!("bosun_peak_rss_mb: {bm:.1}");
    println!("skopeo_peak_rss_mb: {sm:.1}");
    println!("throughput bosun/skopeo: {:.2} (goal >= 1)", br / sr);
    println!(
        "peak RSS bosun: {bm:.1} MB (goal <= 40), bosun/skopeo {:.2}",
        bm / sm
    );
    Ok(())
}
