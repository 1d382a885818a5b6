//! The sign-in figures: how many console sign-ins (argon2 password check, then a TOTP code) a
//! fleetd serves per second, and what real users see while someone floods the sign-in page
//! with wrong passwords from one address. Prints; asserts nothing.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const PASSWORD: &str = "bench-clinician-password";

/// Users made for the bench, each with two-step sign-in set up: (name, TOTP secret).
pub async fn add_users(exe: &Path, dir: &Path, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("bench-clinician-{i:03}");
        let mut add = Command::new(exe)
            .args(["user", "add", &name, "--role", "clinician", "--clinic", "Clinic 01"])
            .args(["--password-stdin", "--with-totp", "--json", "--data-dir"])
            .arg(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        add.stdin.take().context("stdin")?.write_all(format!("{PASSWORD}\n").as_bytes()).await?;
        let out = add.wait_with_output().await?;
        if !out.status.success() {
            bail!("fleetd user add {name} failed");
        }
        let added: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        users.push((name, added["totp_secret"].as_str().context("no secret")?.to_string()));
    }
    Ok(users)
}

/// One whole sign-in (password, then the current code); its time, or the status that refused it.
async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    user: &(String, String),
) -> Result<Duration, u16> {
    let t = Instant::now();
    let body = json!({"username": user.0, "password": PASSWORD});
    let res = http.post(format!("{base}/api/login")).json(&body).send().await.map_err(|_| 0u16)?;
    if !res.status().is_success() {
        return Err(res.status().as_u16());
    }
    let pending: serde_json::Value = res.json().await.map_err(|_| 0u16)?;
    let code = super::totp_now(&user.1).map_err(|_| 0u16)?;
    let body = json!({"pending": pending["pending"], "code": code});
    let res =
        http.post(format!("{base}/api/login/code")).json(&body).send().await.map_err(|_| 0u16)?;
    if !res.status().is_success() {
        return Err(res.status().as_u16());
    }
    Ok(t.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    ms(sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

/// Runs both figures against the fleetd at `base`; `client(ip)` gives an HTTPS client whose
/// requests come from `ip`. `users` are used once each (a code's time step counts once).
pub async fn bench(
    base: &str,
    client: impl Fn(IpAddr) -> anyhow::Result<reqwest::Client>,
    users: &[(String, String)],
    flood: usize,
) -> anyhow::Result<()> {
    let (steady, real) = users.split_at(users.len().saturating_sub(5));
    // Throughput: four at a time (fleetd checks four passwords at once).
    let http = client("127.0.0.3".parse()?)?;
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    for user in steady {
        let (http, base, sem, user) = (http.clone(), base.to_string(), sem.clone(), user.clone());
        set.spawn(async move {
            let _p = sem.acquire().await;
            sign_in(&http, &base, &user).await
        });
    }
    let mut times: Vec<Duration> = vec![];
    let mut refused = 0;
    while let Some(r) = set.join_next().await {
        match r? {
            Ok(d) => times.push(d),
            Err(_) => refused += 1,
        }
    }
    let elapsed = t.elapsed();
    times.sort();
    println!();
    println!(
        "sign-in (argon2 + TOTP)  {} in {:.2} s: {:.1} per second, 4 at a time ({refused} refused)",
        times.len(),
        elapsed.as_secs_f64(),
        times.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "sign-in latency          median {:.0} ms, p95 {:.0} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.95)
    );

    // A flood of wrong passwords from one address, 32 at a time, while real users sign in from
    // another.
    let flooder = client("127.0.0.1".parse()?)?;
    let t = Instant::now();
    let mut flood_set = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    for i in 0..flood {
        let (http, base, sem) = (flooder.clone(), base.to_string(), sem.clone());
        flood_set.spawn(async move {
            let _p = sem.acquire().await;
            let body = json!({"username": format!("bench-clinician-{:03}", i % 7), "password": "wrong guess"});
            let res = http.post(format!("{base}/api/login")).json(&body).send().await;
            res.map(|r| r.status().as_u16()).unwrap_or(0)
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let real_http = client("127.0.0.2".parse()?)?;
    // As the console does: a 429 is tried again after its Retry-After (1 s), up to five times.
    let (mut real_times, mut retries) = (vec![], 0);
    for user in real {
        let t = Instant::now();
        for attempt in 0..6 {
            match sign_in(&real_http, base, user).await {
                Ok(_) => {
                    real_times.push(t.elapsed());
                    break;
                }
                Err(429) if attempt < 5 => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(status) => {
                    println!("real user {} refused during the flood: {status}", user.0);
                    break;
                }
            }
        }
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(r) = flood_set.join_next().await {
        *statuses.entry(r?).or_default() += 1;
    }
    let flood_time = t.elapsed();
    real_times.sort();
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{n}× {s}")).collect();
    println!(
        "sign-in flood            {flood} wrong passwords from one address in {:.2} s: {}",
        flood_time.as_secs_f64(),
        statuses.join(", ")
    );
    println!(
        "real users in the flood  {} of {} signed in, median {:.0} ms, worst {:.0} ms, {retries} waits of 1 s after a 429 (from another address)",
        real_times.len(),
        real.len(),
        percentile(&real_times, 0.5),
        percentile(&real_times, 1.0)
    );
    Ok(())
}
