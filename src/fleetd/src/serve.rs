//! `fleetd serve`: the start-up and shut-down order of the server's parts. Start-up: the PKI,
//! the store, the registry and the CRL, both ports, the broker (or an external one), the hub,
//! the MQTT client, the fleet driver, then HTTPS; `fleetd ready:` is printed once HTTPS
//! listens and the MQTT client is subscribed. Shut-down on SIGINT or SIGTERM, the other way
//! round.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum_server::tls_rustls::RustlsConfig;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::accounts::throttle::Policy;
use crate::accounts::{Accounts, RequireMfa, Settings};
use crate::audit::{self, Audit};
use crate::data_dir::DataDir;
use crate::fleet::{Fleet, driver};
use crate::pki::{self, renewal, signing};
use crate::registry::{Registry, revocation};
use crate::signalling::hub;
use crate::store::Store;
use crate::supervise::{self, Health};
use crate::visit_codes::VisitCodes;
use crate::{broker, http, mqtt, turn};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the HTTPS console.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// A second HTTPS listener for kiosks (enrolment, certificate renewal) that serves fleetd's
    /// own server certificate, which kiosks pin; needed with --web-cert (point the kiosks'
    /// --server at it). Without --web-cert kiosks may use either listener.
    #[arg(long, value_name = "ADDR")]
    device_listen: Option<SocketAddr>,
    /// The certificate chain (PEM) the console listener (--listen) serves to browsers, from your
    /// enterprise or a public CA, instead of one from fleetd's CA; re-read every hour. Needs
    /// --web-key and --device-listen.
    #[arg(long, value_name = "PEM", requires_all = ["web_key", "device_listen"])]
    web_cert: Option<PathBuf>,
    /// The private key (PEM) of --web-cert.
    #[arg(long, value_name = "PEM", requires = "web_cert")]
    web_key: Option<PathBuf>,
    /// Address of the embedded MQTT broker's TLS listener.
    #[arg(long, default_value = "127.0.0.1:8883")]
    mqtt_listen: SocketAddr,
    /// A DNS name or IP address kiosks and browsers use to reach fleetd (e.g. the FQDN in the
    /// kiosks' fleet URL, or a NAT's public address); may be repeated (or comma-separated in
    /// FLEETD_SERVER_NAME). The server certificate covers these besides every address fleetd
    /// listens on, localhost and the host name; a changed list issues it again at start. A new
    /// CA permits only the names given when it is made (nameConstraints): give them all before
    /// the first start.
    #[arg(
        long = "server-name",
        visible_alias = "public-name",
        env = "FLEETD_SERVER_NAME",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    public_names: Vec<pki::PublicName>,
    /// Use this broker (mqtts://HOST:PORT) instead of starting mosquitto. fleetd connects with
    /// a client certificate from its CA (CN `fleetd`). The broker must require client
    /// certificates from fleetd's CA (DATA_DIR/ca.pem), use the certificate CN as the user name
    /// and as the client id, refuse packets over 66560 bytes (fleetd's own limit) and anonymous
    /// clients, check DATA_DIR/crl.pem (fleetd rewrites it on every revocation: make the broker
    /// re-read it and drop the revoked device's connection), and apply the ACL fleetd writes
    /// for its own broker: user `fleetd` may use `telekiosk/#`; every other user only reads
    /// `telekiosk/v1/dev/%u/{config,cmd,visit/in}` and only writes
    /// `telekiosk/v1/dev/%u/{state,visit/out,cmd/result}`. It needs no persistence: fleetd
    /// sends every device's retained config again each time it connects.
    #[arg(long, verbatim_doc_comment)]
    mqtt_url: Option<String>,
    /// Also trust this CA (PEM) for the broker given by --mqtt-url.
    #[arg(long, requires = "mqtt_url")]
    mqtt_ca: Option<PathBuf>,
    /// The mosquitto binary to run.
    #[arg(long, default_value = broker::DEFAULT_MOSQUITTO)]
    mosquitto: PathBuf,
    /// A STUN server for kiosks and clinicians' browsers (stun:HOST:PORT); may be repeated.
    #[arg(long = "stun-url")]
    stun_urls: Vec<String>,
    /// A TURN server (turn:HOST:PORT or turns:HOST:PORT); may be repeated. Each visit gets
    /// credentials minted from --turn-secret-file, valid a few hours.
    #[arg(long = "turn-url")]
    turn_urls: Vec<String>,
    /// File holding the secret shared with the TURN server (coturn: use-auth-secret,
    /// static-auth-secret). Never logged.
    #[arg(long)]
    turn_secret_file: Option<PathBuf>,
    /// Calls may only go through the TURN server (for clinics whose firewalls allow nothing
    /// else).
    #[arg(long)]
    turn_relay_only: bool,
    /// How long audit records are kept (e.g. 6y, 2190d); older ones are pruned once a day.
    #[arg(long, default_value = "6y", value_parser = crate::cli::duration::parse_duration)]
    audit_retention: Duration,
    /// Who must use two-step sign-in (TOTP): every account, or admins only. Admins always must.
    #[arg(long, value_enum, default_value = "all")]
    require_mfa: RequireMfa,
    /// Idle time-out of console sessions (for tests).
    #[arg(long, hide = true, value_parser = crate::cli::duration::parse_duration, default_value = "15m")]
    session_idle: Duration,
    /// First back-off wait after failed sign-ins, in milliseconds; 0 keeps only the lock-outs
    /// (for tests).
    #[arg(long, hide = true, default_value_t = 1000)]
    sign_in_backoff_ms: u64,
    #[command(flatten)]
    oidc: crate::oidc::OidcArgs,
}

impl ServeArgs {
    fn account_settings(&self) -> Settings {
        let base = Duration::from_millis(self.sign_in_backoff_ms);
        Settings {
            idle: self.session_idle,
            require_mfa: self.require_mfa,
            account: Policy::ACCOUNT.with_base(base),
            address: Policy::ADDRESS.with_base(base),
            ..Settings::default()
        }
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(serve(data_dir, args))
}

async fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("another TLS crypto provider is already installed"))?;
    let mut stop = Stop::new()?;
    let data_dir = DataDir::prepare(data_dir)?;
    data_dir.require_private()?;
    // Sign-in through an identity provider: checked (and its secret read) before anything starts.
    let oidc = args.oidc.settings()?.map(crate::oidc::provider::Provider::new).transpose()?;
    if let Some(p) = &oidc {
        tracing::info!(issuer = %p.settings().issuer, "sign-in through an identity provider is offered");
    }
    let hostname = hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let names = certificate_names(&args, &hostname);
    tracing::info!(?names, "the server certificate covers these names");
    let pki = pki::ensure_for(data_dir.pki(), &hostname, &names)?;
    say(&format!("CA certificate: {}", pki.ca_cert.display()));
    // One connection each: sign-ins, enrolment and fleet administration each hold their own
    // store's lock, so a slow rollout write does not stall a sign-in (SQLite's WAL lets them
    // read and write side by side).
    let db = data_dir.db();
    let accounts = Arc::new(Accounts::with_settings(Store::open(&db)?, args.account_settings()));
    let signing_key = signing::ensure(&data_dir.signing_key())?;
    let registry = Arc::new(Registry::new(Store::open(&db)?, pki.clone(), signing_key)?);
    let fleet = Arc::new(Fleet::new(Store::open(&db)?));
    let visit_codes = Arc::new(VisitCodes::open(Store::open(&db)?, &data_dir.visit_code_key())?);
    let trail = Audit::open(&data_dir)?;
    let signer = Arc::new(signing::Signer::load(&data_dir.signing_key())?);
    // The CRL before the broker: mosquitto refuses every client while it has none.
    let crl = data_dir.crl();
    let revoked = revocation::write_crl(&registry, &crl)?;

    // Both ports first, so a busy one fails before anything is started.
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {} for HTTPS (pick --listen)", args.listen))?;
    let web_addr = listener.local_addr()?;
    let device_listener = match args.device_listen {
        Some(addr) => Some(std::net::TcpListener::bind(addr).with_context(|| {
            format!("cannot listen on {addr} for kiosks' HTTPS (pick --device-listen)")
        })?),
        None => None,
    };
    // Then the broker: fleetd's own client needs it to be ready.
    let (mqtt_host, mqtt_port, mut trusted, mut broker) = match &args.mqtt_url {
        Some(url) => {
            let (host, port) = parse_mqtt_url(url)?;
            (host, port, args.mqtt_ca.iter().cloned().collect(), None)
        }
        None => {
            broker::check_port_free(args.mqtt_listen)?;
            let (conf, acl) = (data_dir.broker_config(), data_dir.broker_acl());
            broker::write_config(&conf, &acl, args.mqtt_listen, &pki, &crl)?;
            let mut broker = broker::Broker::start(&args.mosquitto, &conf)?;
            if let Err(e) = broker.wait_running(Duration::from_secs(10)).await {
                broker.stop().await;
                return Err(e.into());
            }
            let host = mqtt_connect_ip(args.mqtt_listen.ip()).to_string();
            (host, args.mqtt_listen.port(), Vec::new(), Some(broker))
        }
    };
    trusted.insert(0, pki.ca_cert.clone());
    let broker_control = broker.as_ref().map(broker::Broker::control);
    let (watcher, mut watcher_task) =
        revocation::spawn(registry.clone(), crl, revoked, broker_control.clone());
    let identity = Arc::new(renewal::ClientIdentity::issue(
        &pki::ca_issuer(&pki)?,
        time::OffsetDateTime::now_utc(),
    )?);

    let (outbox_tx, outbox_rx) = mpsc::channel(1024);
    let secret = match &args.turn_secret_file {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read the TURN secret file {}", path.display()))?,
        ),
        None => None,
    };
    let ice = turn::IceConfig::new(
        args.stun_urls.clone(),
        args.turn_urls.clone(),
        secret.as_deref(),
        args.turn_relay_only,
    )?;
    let places_of = registry.clone();
    let places: hub::Places =
        Arc::new(move |id| places_of.show(id).ok().map(|d| (d.clinic, d.room)));
    let mut upkeep = audit::spawn_upkeep(trail.clone(), args.audit_retention);
    let (to_trail, mut trail_queue) = audit::spawn_queue(trail.clone());
    let keys_of = registry.clone();
    let keys: hub::DeviceKeys = Arc::new(move |id| keys_of.public_key(id).ok());
    let (hub, mut hub_task) =
        hub::spawn(outbox_tx, ice, places, keys, visit_codes.clone(), to_trail);
    let settings = mqtt::MqttSettings {
        host: mqtt_host.clone(),
        port: mqtt_port,
        tls: renewal::client_tls(&trusted, identity.clone())?,
    };
    let (to_fleet, fleet_inbox) = mpsc::channel(8192);
    let (publish_tx, publishes) = mpsc::channel(1024);
    let (connected, connections) = watch::channel(0);
    let wiring = mqtt::Wiring { to_fleet, publishes, connected };
    let mut mqtt = mqtt::Mqtt::start(settings, hub.clone(), outbox_rx, wiring);
    let (driver, mut driver_tasks) =
        driver::spawn(fleet.clone(), signer, fleet_inbox, publish_tx, connections);

    let handle = axum_server::Handle::new();
    let health = Health::default();
    let registry_for_renewal = registry.clone();
    let state = http::AppState::new(accounts, hub, registry, watcher, fleet, driver, trail.clone());
    state.set_visit_codes(visit_codes);
    state.set_bundles_dir(data_dir.bundles());
    if let Some(provider) = oidc {
        state.set_oidc(Arc::new(provider));
    }
    let app = http::app(state).merge(http::health::routes(health.clone()));
    let web_tls = RustlsConfig::from_config(pki::server_tls(&pki)?);
    // With --web-cert browsers get the operator's certificate and kiosks the device listener.
    let operator = match (&args.web_cert, &args.web_key) {
        (Some(cert), Some(key)) => {
            let tls = RustlsConfig::from_config(pki::web::operator_tls(cert, key)?);
            Some((tls, cert.clone(), key.clone()))
        }
        _ => None,
    };
    let console_tls = operator.as_ref().map_or_else(|| web_tls.clone(), |(tls, ..)| tls.clone());
    let device_handle = axum_server::Handle::new();
    let mut device_task = match device_listener {
        Some(l) => {
            tokio::spawn(http::serve(l, web_tls.clone(), app.clone(), device_handle.clone()))
        }
        None => tokio::spawn(std::future::pending()),
    };
    let mut web_task = tokio::spawn(http::serve(listener, console_tls, app, handle.clone()));
    // fleetd's own certificates are renewed while it runs, kiosks' are watched (M10, H4).
    let reload =
        renewal::Reload { web: web_tls, broker: broker_control.clone(), mqtt: identity, operator };
    let mut renewer = renewal::spawn(pki.clone(), hostname, names, registry_for_renewal, reload);

    let outcome = tokio::select! {
        _ = stop.wait() => Ok(false),
        ready = async { handle.listening().await.zip(mqtt.subscribed().await.ok()) } => match ready {
            Some(_) => Ok(true),
            None => Err(anyhow::anyhow!("the HTTPS server or the MQTT client failed to start")),
        },
    };
    let outcome = match outcome {
        Ok(true) => {
            let mqtt_addr = host_port(&mqtt_host, mqtt_port);
            say(&format!("fleetd ready: console https://{web_addr}/ mqtt mqtts://{mqtt_addr}"));
            let [driver_a, driver_b] = &mut driver_tasks;
            let mut watched = vec![
                ("signalling hub", &mut hub_task),
                ("fleet driver", driver_a),
                ("fleet driver resend", driver_b),
                ("revocation watcher", &mut watcher_task),
                ("audit upkeep", &mut upkeep),
                ("audit queue", &mut trail_queue),
                ("certificate renewal", &mut renewer),
            ];
            watched.extend(mqtt.tasks_mut());
            if let Some(broker) = broker.as_mut() {
                watched.push(("broker supervisor", broker.task_mut()));
            }
            tokio::select! {
                _ = stop.wait() => Ok(()),
                ended = supervise::first_to_end(watched) => {
                    health.down(ended.name);
                    tracing::error!("{}; exiting so the service manager restarts fleetd", ended.describe());
                    Err(anyhow::anyhow!("{}", ended.describe()))
                }
                res = &mut device_task => match res {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the kiosks' HTTPS server stopped")),
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(e.into()),
                },
                res = &mut web_task => match res {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the HTTPS server stopped")),
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(e.into()),
                },
            }
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };

    tracing::info!("shutting down");
    handle.graceful_shutdown(Some(Duration::from_secs(2)));
    device_handle.graceful_shutdown(Some(Duration::from_secs(2)));
    device_task.abort();
    let _ = tokio::time::timeout(Duration::from_secs(3), web_task).await;
    mqtt.stop().await;
    driver_tasks.iter().for_each(JoinHandle::abort);
    watcher_task.abort();
    renewer.abort();
    if let Some(broker) = broker {
        broker.stop().await;
    }
    upkeep.abort();
    hub_task.abort();
    // A finished task may already have been awaited by the supervisor: never poll it again.
    if !trail_queue.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut trail_queue).await;
    }
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || trail.write_head()).await {
        tracing::error!(target: "fleetd::audit", "cannot write the audit head: {e:#}");
    }
    outcome
}

/// Prints one line on stdout and flushes it: scripts and tests wait for these lines.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// SIGINT or SIGTERM.
struct Stop {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> anyhow::Result<Self> {
        Ok(Self { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => tracing::info!("SIGINT received"),
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
        }
    }
}

/// `mqtts://HOST:PORT` → (HOST, PORT). Plain `mqtt://` is refused: kiosks only speak TLS.
fn parse_mqtt_url(url: &str) -> anyhow::Result<(String, u16)> {
    let Some(rest) = url.strip_prefix("mqtts://") else {
        bail!("--mqtt-url must be mqtts://HOST:PORT (fleetd only uses MQTT over TLS), not {url:?}");
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            let port = port.parse().with_context(|| format!("bad port in --mqtt-url {url:?}"))?;
            (host, port)
        }
        _ => (rest, 8883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        bail!("bad host in --mqtt-url {url:?}: expected mqtts://HOST:PORT");
    }
    Ok((host.to_string(), port))
}

/// What the server certificate must name: see [`pki::server_names`]. The broker's address only
/// counts when fleetd runs the broker (not with --mqtt-url); the interfaces are only listed when a
/// listener is on the unspecified address.
fn certificate_names(args: &ServeArgs, hostname: &str) -> Vec<String> {
    let mut listen = vec![args.listen.ip()];
    listen.extend(args.device_listen.map(|a| a.ip()));
    if args.mqtt_url.is_none() {
        listen.push(args.mqtt_listen.ip());
    }
    let interfaces = match listen.iter().any(IpAddr::is_unspecified) {
        true => pki::interface_addresses(),
        false => Vec::new(),
    };
    pki::server_names(hostname, &listen, &interfaces, &args.public_names)
}

/// Where fleetd's own MQTT client reaches the broker it runs on `listen`: loopback for a broker
/// on every address (loopback always works, and the certificate always names it), else the
/// broker's own address (which the certificate names too).
fn mqtt_connect_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(v6) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `fleetd serve`'s options alone.
    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn mqtt_urls_are_parsed_and_plain_mqtt_is_refused() {
        assert_eq!(parse_mqtt_url("mqtts://broker.lan:8883").unwrap(), ("broker.lan".into(), 8883));
        assert_eq!(parse_mqtt_url("mqtts://[::1]:9883").unwrap(), ("::1".into(), 9883));
        assert_eq!(parse_mqtt_url("mqtts://broker.lan").unwrap(), ("broker.lan".into(), 8883));
        assert!(parse_mqtt_url("mqtt://broker.lan:1883").is_err());
        assert!(parse_mqtt_url("mqtts://user@broker.lan:1").is_err());
    }

    #[test]
    fn fleetds_own_mqtt_client_connects_to_a_name_the_certificate_covers() {
        let interfaces: Vec<IpAddr> =
            ["127.0.0.1", "10.77.0.2", "::1", "fd00::2"].map(|a| a.parse().unwrap()).into();
        for listen in ["0.0.0.0", "::", "127.0.0.1", "127.0.0.2", "::1", "10.77.0.2", "fd00::2"] {
            let listen: IpAddr = listen.parse().unwrap();
            let names = pki::server_names("host", &[listen], &interfaces, &[]);
            let connect = mqtt_connect_ip(listen);
            assert!(names.contains(&connect.to_string()), "{listen} → {connect} not in {names:?}");
            assert!(!connect.is_unspecified());
        }
    }

    #[test]
    fn the_certificate_covers_the_brokers_address_only_when_fleetd_runs_the_broker() {
        let serve = |extra: &[&str]| {
            let base = ["serve", "--listen", "10.0.0.5:8443"];
            let base = [&base[..], &["--mqtt-listen", "10.0.0.6:8883"], extra].concat();
            certificate_names(&Serve::try_parse_from(base).unwrap().args, "host")
        };
        let own = serve(&["--public-name", "Fleet.Example.", "--public-name", "198.51.100.7"]);
        for name in ["10.0.0.5", "10.0.0.6", "fleet.example", "198.51.100.7", "host"] {
            assert!(own.iter().any(|n| n == name), "{name} not in {own:?}");
        }
        let external = serve(&["--mqtt-url", "mqtts://broker.example:8883"]);
        assert!(external.iter().any(|n| n == "10.0.0.5"), "{external:?}");
        assert!(!external.iter().any(|n| n == "10.0.0.6"), "{external:?}");
    }

    #[test]
    fn audit_retention_defaults_to_six_years_and_takes_a_unit() {
        let parse = |args: &[&str]| Serve::try_parse_from([&["serve"][..], args].concat());
        let six_years = Duration::from_secs(6 * 365 * 86_400);
        assert_eq!(parse(&[]).unwrap().args.audit_retention, six_years);
        let ten = parse(&["--audit-retention", "10y"]).unwrap().args.audit_retention;
        assert_eq!(ten, 10 * six_years / 6);
        assert!(parse(&["--audit-retention", "6"]).is_err());
    }

    #[test]
    fn a_bad_public_name_is_refused_with_the_name_in_the_error() {
        for bad in ["fleet example", "*.example.com", "0.0.0.0", "fleet..example", "-x.example", ""]
        {
            let arg = format!("--public-name={bad}");
            let err = Serve::try_parse_from(["serve", &arg]).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        let ok = ["serve", "--public-name", "fleet.example", "--public-name", "[fd00::1]"];
        assert!(Serve::try_parse_from(ok).is_ok());
    }
}
