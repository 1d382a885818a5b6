//! The update adapter: one task that owns the [`Updater`], carries out its actions through
//! [`UpdateFiles`] and the [`Fetcher`], and tells the controller the operating system's state
//! whenever it changes. The controller hands it orders, the moment (visit or not, clinic open
//! or closed), and the news that the kiosk is healthy.

use std::time::{Duration, Instant};

use telekiosk_protocol::update::{OsState, UpdateOrder};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::fetch::Fetcher;
use super::files::UpdateFiles;
use super::{Action, Answer, Updater};

/// How often `install.result` is looked for while RAUC installs.
const POLL: Duration = Duration::from_secs(2);
/// Progress reports while fetching, at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

enum ToAgent {
    Order(UpdateOrder, oneshot::Sender<Answer>),
    Moment { visit: bool, closed: bool },
    Healthy,
    Reboot(oneshot::Sender<Result<(), String>>),
}

/// The controller's handle on the update task.
#[derive(Clone)]
pub struct Updates {
    tx: mpsc::UnboundedSender<ToAgent>,
    /// The state at start, for the first report.
    pub first: OsState,
}

impl Updates {
    /// Hands over an `install_update` order; the answer is the command's result.
    pub async fn order(&self, order: UpdateOrder) -> Answer {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(ToAgent::Order(order, tx)).is_err() {
            return Answer::Refused("the update task has stopped".into());
        }
        rx.await.unwrap_or_else(|_| Answer::Refused("the update task has stopped".into()))
    }

    /// Whether a visit is in progress and whether the clinic is closed, now.
    pub fn moment(&self, visit: bool, closed: bool) {
        let _ = self.tx.send(ToAgent::Moment { visit, closed });
    }

    /// The kiosk is enrolled, connected to the fleet, and its camera, microphone and TPM work.
    pub fn healthy(&self) {
        let _ = self.tx.send(ToAgent::Healthy);
    }

    /// Asks the appliance to reboot (it runs as root; the kiosk cannot).
    pub async fn reboot(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(ToAgent::Reboot(tx)).map_err(|_| "the update task has stopped".to_string())?;
        rx.await.map_err(|_| "the update task has stopped".to_string())?
    }
}

/// Starts the update task; `on_state` gets the OS state each time it changes.
pub fn spawn(
    files: UpdateFiles,
    fetcher: Option<Fetcher>,
    on_state: impl Fn(OsState) + Send + 'static,
) -> Updates {
    let (updater, first_actions) = Updater::start(files.booted(), files.kept(), files.leftovers());
    let first = updater.state();
    tracing::info!(version = %first.version, slot = %first.slot, trial = first.trial, "operating system");
    let (tx, rx) = mpsc::unbounded_channel();
    let agent = Agent { updater, files, fetcher, fetch: None, healthy_marked: false, moment: None };
    tokio::spawn(agent.run(rx, first_actions, on_state));
    Updates { tx, first }
}

struct Agent {
    updater: Updater,
    files: UpdateFiles,
    fetcher: Option<Fetcher>,
    fetch: Option<JoinHandle<()>>,
    healthy_marked: bool,
    /// The last (visit, closed) the controller said: every change of stage is weighed
    /// against it at once.
    moment: Option<(bool, bool)>,
}

enum Fetched {
    Progress(u64),
    Done(String, Result<(), String>),
}

impl Agent {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<ToAgent>,
        first: Vec<Action>,
        on_state: impl Fn(OsState),
    ) {
        let (fetched_tx, mut fetched_rx) = mpsc::unbounded_channel();
        self.carry_out(first, &fetched_tx);
        let mut shown = self.updater.state();
        let mut poll = tokio::time::interval(POLL);
        let mut last_progress = Instant::now();
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { return };
                    let actions = match msg {
                        ToAgent::Order(order, reply) => {
                            let (answer, actions) = self.updater.order(order);
                            let _ = reply.send(answer);
                            actions
                        }
                        ToAgent::Moment { visit, closed } => {
                            self.moment = Some((visit, closed));
                            vec![]
                        }
                        ToAgent::Healthy => {
                            self.mark_healthy();
                            vec![]
                        }
                        ToAgent::Reboot(reply) => {
                            let r = self.files.request_plain_reboot();
                            let _ = reply.send(r.map_err(|e| format!("cannot ask for the reboot: {e}")));
                            vec![]
                        }
                    };
                    self.carry_out(actions, &fetched_tx);
                }
                Some(f) = fetched_rx.recv() => match f {
                    Fetched::Progress(n) => {
                        self.updater.progress(n);
                        if last_progress.elapsed() < PROGRESS_EVERY {
                            continue;
                        }
                        last_progress = Instant::now();
                    }
                    Fetched::Done(version, result) => {
                        self.fetch = None;
                        if let Err(e) = &result {
                            tracing::error!(%version, "the update cannot be fetched: {e}");
                        }
                        let actions = self.updater.fetched(&version, result);
                        self.carry_out(actions, &fetched_tx);
                    }
                },
                _ = poll.tick() => {
                    let state = self.updater.state();
                    if state.trial {
                        // boot.json says trial: false once the check marked the slot good.
                        self.updater.set_trial(self.files.booted().trial);
                    }
                    let installing = state.update.as_ref().filter(|u| {
                        u.phase == telekiosk_protocol::update::UpdatePhase::Installing
                    });
                    if let Some(u) = installing
                        && let Some(result) = self.files.install_result(&u.version)
                    {
                        match &result {
                            Ok(()) => tracing::info!(target: "audit", event = "update_installed", version = %u.version, "update installed into the other slot"),
                            Err(e) => tracing::error!(target: "audit", event = "update_install_failed", version = %u.version, "update install failed: {e}"),
                        }
                        let actions = self.updater.installed(&u.version.clone(), result);
                        self.carry_out(actions, &fetched_tx);
                    }
                }
            }
            if let Some((visit, closed)) = self.moment {
                let actions = self.updater.tick(visit, closed);
                self.carry_out(actions, &fetched_tx);
            }
            let state = self.updater.state();
            if state != shown {
                shown = state.clone();
                on_state(state);
            }
        }
    }

    fn carry_out(&mut self, actions: Vec<Action>, fetched: &mpsc::UnboundedSender<Fetched>) {
        for action in actions {
            match action {
                Action::Keep(kept) => {
                    if let Err(e) = self.files.keep(&kept) {
                        tracing::error!("cannot keep the update's state: {e}");
                    }
                    if let (Some(order), Some(stage)) = (&kept.order, kept.stage) {
                        let stage = format!("{stage:?}").to_lowercase();
                        crate::app::status(
                            &serde_json::json!({"event": "update", "version": order.version, "stage": stage}),
                        );
                    }
                }
                Action::Fetch(order) => self.start_fetch(order, fetched.clone()),
                Action::CancelFetch => {
                    if let Some(task) = self.fetch.take() {
                        task.abort();
                    }
                }
                Action::Install { version } => {
                    tracing::info!(target: "audit", event = "update_install", %version, "installing the update into the other slot");
                    if let Err(e) = self.files.request_install(&version) {
                        let reason = format!("cannot ask for the install: {e}");
                        let more = self.updater.installed(&version, Err(reason));
                        self.carry_out(more, fetched);
                    }
                }
                Action::Reboot { version, health_timeout_secs } => {
                    tracing::info!(target: "audit", event = "update_reboot", %version, "rebooting into the update");
                    if let Err(e) = self.files.request_reboot(&version, health_timeout_secs) {
                        tracing::error!("cannot ask for the reboot into {version}: {e}");
                    }
                }
                Action::ForgetTrial => {
                    if let Err(e) = self.files.forget_trial() {
                        tracing::warn!("cannot remove the last trial's files: {e}");
                    }
                }
                Action::Clean => {
                    if let Err(e) = self.files.clean() {
                        tracing::warn!("cannot remove the update's files: {e}");
                    }
                }
            }
        }
    }

    fn start_fetch(&mut self, order: UpdateOrder, fetched: mpsc::UnboundedSender<Fetched>) {
        if let Some(task) = self.fetch.take() {
            task.abort();
        }
        let Some(fetcher) = self.fetcher.clone() else {
            let why = "this kiosk has no connection to fleetd to fetch the update from".to_string();
            let _ = fetched.send(Fetched::Done(order.version, Err(why)));
            return;
        };
        let files = self.files.clone();
        tracing::info!(target: "audit", event = "update_fetch", version = %order.version, bytes = order.size, "fetching the update");
        self.fetch = Some(tokio::spawn(async move {
            let progress = |n| {
                let _ = fetched.send(Fetched::Progress(n));
            };
            let result = fetcher.fetch(&order, &files, progress).await;
            let _ = fetched.send(Fetched::Done(order.version, result));
        }));
    }

    fn mark_healthy(&mut self) {
        if self.healthy_marked || self.updater.state().slot.is_empty() {
            return;
        }
        self.healthy_marked = true;
        match self.files.mark_healthy() {
            Ok(()) => {
                tracing::info!(target: "audit", event = "healthy", "the kiosk reported healthy to the update check")
            }
            Err(e) => tracing::error!("cannot report healthy to the update check: {e}"),
        }
    }
}

/// The update task of a kiosk on an A/B appliance (its os-release names an image version and
/// the update check wrote `boot.json`); `None` elsewhere, where the kiosk refuses updates and
/// reboots with its reboot command.
pub fn on_appliance(
    state_dir: &std::path::Path,
    os_release: &std::path::Path,
    server: &url::Url,
    tls: &rustls::ClientConfig,
    on_state: impl Fn(OsState) + Send + 'static,
) -> Option<Updates> {
    let files = UpdateFiles::new(state_dir.join("update"), os_release.to_path_buf());
    if files.booted().slot.is_empty() {
        tracing::info!("not on an A/B appliance image: OS updates are off");
        return None;
    }
    let fetcher =
        Fetcher::new(server.clone(), tls.clone()).inspect_err(|e| tracing::error!("{e}")).ok();
    Some(spawn(files, fetcher, on_state))
}
