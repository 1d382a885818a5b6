//! Bench: a simulated fleet against the real `fleetd serve` (with its embedded mosquitto).
//! Enrols N kiosks through the HTTPS API (token, CSR, approval, certificate, as a technician
//! and an admin would), connects them all as MQTT clients over mutual TLS, rolls a config out
//! to every clinic, and prints figures: time until every kiosk acknowledged, and fleetd's and
//! the broker's memory and CPU. The kiosks are `telekiosk-sim`'s (software keys: the simulator
//! only), the same the integration tests use.
//!
//! `cargo run --release -p fleetd --example fleet_sim -- --kiosks 1000`
//! (`--hold` keeps the fleet running afterwards, e.g. to look at the admin console.)

mod procs;
mod sign_in;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use telekiosk_protocol::api::{EnrolToken, RolloutInfo, RolloutStatus};
use telekiosk_sim::{Answer, Behaviour, Device, Tally, client_tls};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use procs::{Usage, broker_of, ticks_per_sec};

#[derive(Debug, Parser)]
struct Args {
    /// Simulated kiosks.
    #[arg(long, default_value_t = 1000)]
    kiosks: usize,
    /// Clinics (groups) they are spread over; each gets its own rollout.
    #[arg(long, default_value_t = 1)]
    clinics: usize,
    /// First wave of each rollout, percent.
    #[arg(long, default_value_t = 10)]
    first_wave_percent: u8,
    /// This many kiosks refuse every config (spread over the fleet).
    #[arg(long, default_value_t = 0)]
    refusing: usize,
    /// This many kiosks report a missing camera.
    #[arg(long, default_value_t = 0)]
    sick: usize,
    /// Enrolments and connections in flight at once.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// The fleetd binary (default: next to this example's directory).
    #[arg(long)]
    fleetd: Option<PathBuf>,
    /// Console users for the sign-in figures (0: none); the last five sign in during the flood.
    #[arg(long, default_value_t = 40)]
    sign_in_users: usize,
    /// Wrong passwords sent from one address while the last five users sign in.
    #[arg(long, default_value_t = 2000)]
    sign_in_flood: usize,
    /// Keep everything running after the figures (Ctrl-C ends it).
    #[arg(long)]
    hold: bool,
}

const ADMIN: (&str, &str) = ("bench-admin", "bench-admin-password");

/// The admin's current TOTP code, as an authenticator app shows it.
fn totp_now(secret: &str) -> anyhow::Result<String> {
    use totp_rs::{Algorithm, Secret, TOTP};
    let bytes =
        Secret::Encoded(secret.to_string()).to_bytes().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let totp = TOTP::new(Algorithm::SHA1, 6, 0, 30, bytes)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    Ok(totp.generate(now))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exe = match &args.fleetd {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .context("no parent")?
            .join("fleetd"),
    };
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let mut add = Command::new(&exe)
        .args(["user", "add", ADMIN.0, "--role", "admin", "--password-stdin", "--with-totp"])
        .args(["--json", "--data-dir"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    add.stdin.take().context("stdin")?.write_all(format!("{}\n", ADMIN.1).as_bytes()).await?;
    let added = add.wait_with_output().await?;
    if !added.status.success() {
        bail!("fleetd user add failed");
    }
    let added: serde_json::Value = serde_json::from_slice(&added.stdout)?;
    let secret = added["totp_secret"].as_str().context("no TOTP secret")?.to_string();
    let bench_users = sign_in::add_users(&exe, &dir, args.sign_in_users).await?;
    let (web, mqtt) = (free_port()?, free_port()?);
    let log = tmp.path().join("fleetd.log");
    let mut fleetd = start(&exe, &dir, web, mqtt, &log).await?;
    let base = format!("https://127.0.0.1:{web}");
    let ca = dir.join("ca.pem");
    let tls = client_tls(&ca, None)?;
    // As the admin console's pages: fleetd refuses state-changing requests from other sites.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("origin", base.parse()?);
    let http =
        reqwest::Client::builder().use_preconfigured_tls(tls).default_headers(headers).build()?;
    let res = http
        .post(format!("{base}/api/login"))
        .json(&json!({"username": ADMIN.0, "password": ADMIN.1}))
        .send()
        .await?;
    let pending: serde_json::Value = res.json().await?;
    let res = http
        .post(format!("{base}/api/login/code"))
        .json(&json!({"pending": pending["pending"], "code": totp_now(&secret)?}))
        .send()
        .await?;
    let cookie = res
        .headers()
        .get("set-cookie")
        .context("no session")?
        .to_str()?
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();

    // Enrol.
    let t = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.parallel));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..args.kiosks {
        let (http, base, cookie, sem) = (http.clone(), base.clone(), cookie.clone(), sem.clone());
        let clinic = format!("Clinic {:02}", i % args.clinics + 1);
        set.spawn(async move {
            let _permit = sem.acquire().await?;
            enrol(&http, &base, &cookie, &clinic, &format!("{}", i / args.clinics + 1)).await
        });
    }
    let mut enrolled = Vec::with_capacity(args.kiosks);
    while let Some(r) = set.join_next().await {
        enrolled.push(r??);
    }
    let enrol_time = t.elapsed();

    // Connect.
    let counters = Arc::new(Tally::default());
    let t = Instant::now();
    // Enrolments finish in no particular order, so these are spread over the clinics.
    let mut kiosks = Vec::with_capacity(enrolled.len());
    for (i, device) in enrolled.iter().enumerate() {
        let answer = if i < args.refusing { Answer::Refuse } else { Answer::Accept };
        let sick = (args.refusing..args.refusing + args.sick).contains(&i);
        let tls = device.tls(&ca)?;
        let b = Behaviour::fleet(answer, sick);
        kiosks.push(telekiosk_sim::start(device, tls, mqtt, b, counters.clone()));
        // Pace the handshakes: mosquitto does them on one thread.
        while i + 1 - counters.connected.load(Ordering::Relaxed) > args.parallel * 4 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    wait(Duration::from_secs(300), || counters.connected.load(Ordering::Relaxed) >= args.kiosks)
        .await?;
    let connect_time = t.elapsed();
    let fleetd_pid = fleetd.id().context("fleetd pid")?;
    let broker_pid = broker_of(fleetd_pid).context("no mosquitto under fleetd")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = (Usage::read(fleetd_pid)?, Usage::read(broker_pid)?, Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cpu = (
        Usage::read(fleetd_pid)?.cpu_since(&idle.0, idle.2),
        Usage::read(broker_pid)?.cpu_since(&idle.1, idle.2),
    );

    // Roll out.
    let before = (Usage::read(fleetd_pid)?, Usage::read(broker_pid)?, Instant::now());
    let mut rollouts = Vec::new();
    for c in 0..args.clinics {
        let group = format!("Clinic {:02}", c + 1);
        let path = format!("{base}/api/admin/config/groups/{}", group.replace(' ', "%20"));
        let body = json!({"body": {"idle_timeout_secs": 120, "telemetry_interval_secs": 300}});
        let res = http.put(&path).header("cookie", &cookie).json(&body).send().await?;
        if !res.status().is_success() {
            bail!("config refused: {}", res.text().await?);
        }
        let req = json!({"group": group, "first_wave_percent": args.first_wave_percent});
        let res = http
            .post(format!("{base}/api/admin/rollouts"))
            .header("cookie", &cookie)
            .json(&req)
            .send()
            .await?;
        let r: RolloutInfo = res.json().await?;
        rollouts.push(r.id);
    }
    let t = before.2;
    let started = t.elapsed();
    let accepting = args.kiosks.saturating_sub(args.refusing);
    // Until the rollouts ended and every kiosk that will acknowledge has (a halted rollout
    // never reaches some: then the last acknowledgement counts).
    let (mut last, mut last_at, mut ended, mut polled) = (0, t, None, t);
    let (mut waves, mut statuses): (usize, Vec<&str>) = (0, Vec::new());
    loop {
        let applied = counters.applied.load(Ordering::Relaxed);
        if applied != last {
            (last, last_at) = (applied, Instant::now());
        }
        if ended.is_none() && polled.elapsed() >= Duration::from_millis(100) {
            polled = Instant::now();
            let url = format!("{base}/api/admin/rollouts");
            let list: Vec<RolloutInfo> =
                http.get(url).header("cookie", &cookie).send().await?.json().await?;
            let mine: Vec<&RolloutInfo> =
                list.iter().filter(|r| rollouts.contains(&r.id)).collect();
            if mine.iter().all(|r| {
                !matches!(r.progress.status, RolloutStatus::Running | RolloutStatus::Paused)
            }) {
                ended = Some(t.elapsed());
                waves = mine.iter().map(|r| r.progress.waves.len()).max().unwrap_or(0);
                statuses = mine.iter().map(|r| r.progress.status.as_str()).collect();
            }
        }
        let settled = applied >= accepting || last_at.elapsed() > Duration::from_secs(2);
        if (ended.is_some() && settled) || t.elapsed() > Duration::from_secs(900) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kiosk_side = last_at - t;
    let fleetd_side = ended.unwrap_or(t.elapsed());
    let after = (Usage::read(fleetd_pid)?, Usage::read(broker_pid)?);
    let window = t.elapsed();
    statuses.sort_unstable();
    statuses.dedup();

    println!("kiosks                   {}", args.kiosks);
    println!("clinics (rollouts)       {}", args.clinics);
    println!("enrol via API            {:.1} s", enrol_time.as_secs_f64());
    println!("connect (mutual TLS)     {:.1} s", connect_time.as_secs_f64());
    println!(
        "start rollouts via API   {:.2} s (config checked and stored, rollout made)",
        started.as_secs_f64()
    );
    println!("rollout waves            {waves} (first wave {} %)", args.first_wave_percent);
    let applied = counters.applied.load(Ordering::Relaxed);
    let refusing = args.kiosks - accepting;
    println!("acknowledged             {applied} of {} ({refusing} refusing)", args.kiosks);
    println!(
        "last acknowledgement     {:.2} s after the rollout started",
        kiosk_side.as_secs_f64()
    );
    println!(
        "rollouts ended           {:.2} s ({})",
        fleetd_side.as_secs_f64(),
        statuses.join(", ")
    );
    println!("bad documents            {}", counters.bad.load(Ordering::Relaxed));
    for (name, u, b, idle) in
        [("fleetd", &after.0, &before.0, idle_cpu.0), ("broker", &after.1, &before.1, idle_cpu.1)]
    {
        println!(
            "{name} RSS               {:.0} MB (peak {:.0} MB)",
            u.rss_kb as f64 / 1024.0,
            u.hwm_kb as f64 / 1024.0
        );
        println!(
            "{name} CPU               {:.0} % of a core over the {:.1} s from rollout start ({:.2} s CPU), {:.1} % when idle",
            u.cpu_over(b, window),
            window.as_secs_f64(),
            (u.ticks - b.ticks) as f64 / ticks_per_sec(),
            idle
        );
    }
    if args.sign_in_users > 5 {
        let client = |ip: std::net::IpAddr| -> anyhow::Result<reqwest::Client> {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("origin", base.parse()?);
            Ok(reqwest::Client::builder()
                .use_preconfigured_tls(client_tls(&ca, None)?)
                .default_headers(headers)
                .local_address(ip)
                .build()?)
        };
        sign_in::bench(&base, client, &bench_users, args.sign_in_flood).await?;
    }
    if args.hold {
        println!(
            "holding: console {base}/admin (user {} / {}); Ctrl-C or SIGTERM ends",
            ADMIN.0, ADMIN.1
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fleetd_pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = tokio::time::timeout(Duration::from_secs(10), fleetd.wait()).await;
    Ok(())
}

/// Enrols one kiosk through the API: a token and the approval as an admin, the CSR as a kiosk.
async fn enrol(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    clinic: &str,
    room: &str,
) -> anyhow::Result<Device> {
    let token: EnrolToken = http
        .post(format!("{base}/api/admin/devices/tokens"))
        .header("cookie", cookie)
        .json(&json!({"clinic": clinic, "room": room}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let approve = async |id: &str| -> anyhow::Result<()> {
        http.post(format!("{base}/api/admin/devices/{id}/approve"))
            .header("cookie", cookie)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    };
    telekiosk_sim::enrol(http, base, &token.token, approve).await
}

async fn start(exe: &Path, dir: &Path, web: u16, mqtt: u16, log: &Path) -> anyhow::Result<Child> {
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--listen",
            &format!("127.0.0.1:{web}"),
            "--mqtt-listen",
            &format!("127.0.0.1:{mqtt}"),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with("fleetd ready:") {
                return Ok(());
            }
        }
        bail!("fleetd exited")
    });
    ready
        .await
        .map_err(|_| anyhow::anyhow!("fleetd not ready in 30 s"))?
        .with_context(|| format!("see {}", log.display()))?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(child)
}

async fn wait(limit: Duration, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let t = Instant::now();
    while !done() {
        if t.elapsed() > limit {
            bail!("timed out");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
