//! The TPM actor: one thread owns the tss-esapi `Context` (it is `Send`, not `Sync`) and runs jobs
//! sent over a channel; [`Tpm`] is the cheap, cloneable handle to it.
//!
//! Owns: the connection, reconnecting after a transport failure, the per-connection cache of
//! persistent-handle ESYS objects, and the time bound on every call. Must never: block a caller
//! forever (every call has a deadline), or let a panic in the TSS stack escape to the caller.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tss_esapi::Context;
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{ObjectHandle, TpmHandle};
use tss_esapi::structures::CapabilityData;
use tss_esapi::tcti_ldr::TctiNameConf;

use super::error::{IdentityError, raw_code, tss};

/// How long a caller waits for one TPM operation before giving up. A real TPM creates an ECC key
/// in well under a second; anything near this bound is a hung device.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// Handle to the thread that talks to the TPM. Clones share the same connection; when the last
/// clone (including those inside [`super::DeviceKey`]s) is dropped, the connection is closed.
#[derive(Clone)]
pub struct Tpm {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Option<mpsc::Sender<Job>>,
    /// Disconnects when the TPM thread has finished (connection closed).
    finished: Mutex<mpsc::Receiver<()>>,
    tcti: String,
    timeout: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the thread; wait (bounded) so that the TPM connection is
        // really closed when the last handle is gone: swtpm serves one connection at a time.
        drop(self.jobs.take());
        if let Ok(finished) = self.finished.lock() {
            let _ = finished.recv_timeout(self.timeout.min(Duration::from_secs(5)));
        }
    }
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm").field("tcti", &self.inner.tcti).finish_non_exhaustive()
    }
}

impl Tpm {
    /// Connects to the TPM named by `tcti` (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=P`)
    /// and checks that it answers. Fails with [`IdentityError::Unreachable`] if it does not.
    pub fn open(tcti: &str) -> Result<Tpm, IdentityError> {
        Tpm::open_with_timeout(tcti, DEFAULT_TIMEOUT)
    }

    /// [`Tpm::open`] with a bound other than [`DEFAULT_TIMEOUT`] on every call.
    pub fn open_with_timeout(tcti: &str, timeout: Duration) -> Result<Tpm, IdentityError> {
        TctiNameConf::from_str(tcti).map_err(|e| {
            IdentityError::invalid("TCTI", format!("{tcti:?} is not a TCTI string ({e})"))
        })?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let (finished_tx, finished) = mpsc::channel::<()>();
        let owned = tcti.to_owned();
        std::thread::Builder::new()
            .name("tpm".into())
            .spawn(move || {
                Worker::new(owned).run(rx);
                drop(finished_tx);
            })
            .map_err(|e| IdentityError::Unreachable {
                tcti: tcti.to_owned(),
                reason: format!("cannot start the TPM thread: {e}"),
            })?;
        let inner = Inner {
            jobs: Some(jobs),
            finished: Mutex::new(finished),
            tcti: tcti.to_owned(),
            timeout,
        };
        let tpm = Tpm { inner: Arc::new(inner) };
        tpm.call("open the TPM", |w| w.vendor().map(drop))?;
        Ok(tpm)
    }

    /// The TCTI this handle talks to.
    pub fn tcti(&self) -> &str {
        &self.inner.tcti
    }

    /// The TPM manufacturer as four ASCII letters (e.g. "IBM " for swtpm), for logs.
    pub fn vendor(&self) -> Result<String, IdentityError> {
        self.call("read the TPM vendor", |w| w.vendor())
    }

    /// Runs `job` on the TPM thread and waits at most the timeout for its answer.
    pub(crate) fn call<T, F>(&self, action: &'static str, job: F) -> Result<T, IdentityError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Worker) -> Result<T, IdentityError> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let wrapped: Job = Box::new(move |w: &mut Worker| {
            let result = match catch_unwind(AssertUnwindSafe(|| job(w))) {
                Ok(r) => r,
                Err(_) => {
                    // A panic inside the TSS stack leaves the connection in an unknown state.
                    w.disconnect();
                    Err(IdentityError::Tpm {
                        action,
                        reason: "the TPM software stack failed internally".into(),
                        code: None,
                    })
                }
            };
            if matches!(&result, Err(e) if e.is_unreachable()) {
                w.disconnect();
            }
            let _ = tx.send(result);
        });
        let inner = &self.inner;
        let jobs = inner.jobs.as_ref().ok_or(IdentityError::WorkerStopped)?;
        jobs.send(wrapped).map_err(|_| IdentityError::WorkerStopped)?;
        match rx.recv_timeout(inner.timeout) {
            Ok(result) => result.map_err(|e| e.with_tcti(&inner.tcti)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(IdentityError::Timeout { action, after: inner.timeout })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(IdentityError::WorkerStopped),
        }
    }
}

/// State owned by the TPM thread. Jobs get `&mut Worker` and reach the TPM through [`Worker::ctx`].
pub(crate) struct Worker {
    tcti: String,
    ctx: Option<Context>,
    /// ESYS objects for persistent handles, valid for the current connection only.
    persistent: HashMap<u32, ObjectHandle>,
}

impl Worker {
    fn new(tcti: String) -> Worker {
        Worker { tcti, ctx: None, persistent: HashMap::new() }
    }

    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        // Ends when the last `Tpm` (and every `DeviceKey` holding one) is dropped.
        while let Ok(job) = jobs.recv() {
            job(&mut self);
        }
    }

    /// The connection, (re)opened on demand: after swtpm or the device comes back, the next call
    /// works again without the caller reopening anything.
    pub(crate) fn ctx(&mut self) -> Result<&mut Context, IdentityError> {
        if self.ctx.is_none() {
            let conf = TctiNameConf::from_str(&self.tcti)
                .map_err(|e| IdentityError::invalid("TCTI", e.to_string()))?;
            let ctx = Context::new(conf).map_err(|e| IdentityError::Unreachable {
                tcti: self.tcti.clone(),
                reason: connect_failure(&self.tcti, &e),
            })?;
            self.ctx = Some(ctx);
        }
        Ok(self.ctx.as_mut().expect("connection set just above"))
    }

    /// Drops the connection so the next call reconnects.
    pub(crate) fn disconnect(&mut self) {
        self.persistent.clear();
        if let Some(ctx) = self.ctx.take() {
            // Finalising a broken connection may itself fail inside the TSS; contain it.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(ctx)));
        }
    }

    /// ESYS object for a persistent or NV handle, cached for this connection. Reading a public
    /// area needs no authorisation, so this runs without a session (see FIELD-NOTES: with a
    /// password session set, `tr_from_tpm_public` crashed in libtss2 3.2.1).
    pub(crate) fn esys_object(
        &mut self,
        action: &'static str,
        handle: TpmHandle,
    ) -> Result<ObjectHandle, IdentityError> {
        let raw = u32::from(handle);
        if let Some(obj) = self.persistent.get(&raw) {
            return Ok(*obj);
        }
        let obj = self
            .ctx()?
            .execute_without_session(|c| c.tr_from_tpm_public(handle))
            .map_err(tss(action))?;
        self.persistent.insert(raw, obj);
        Ok(obj)
    }

    /// Forgets the cached ESYS object of `raw` (after the handle was evicted or undefined).
    pub(crate) fn forget(&mut self, raw: u32) {
        if let (Some(mut obj), Some(ctx)) = (self.persistent.remove(&raw), self.ctx.as_mut()) {
            let _ = ctx.tr_close(&mut obj);
        }
    }

    /// True when a persistent object or NV index exists at `raw`.
    pub(crate) fn handle_exists(&mut self, raw: u32) -> Result<bool, IdentityError> {
        let (data, _) = self
            .ctx()?
            .execute_without_session(|c| c.get_capability(CapabilityType::Handles, raw, 1))
            .map_err(tss("list TPM handles"))?;
        Ok(match data {
            CapabilityData::Handles(list) => list.as_ref().iter().any(|h| u32::from(*h) == raw),
            _ => false,
        })
    }

    fn vendor(&mut self) -> Result<String, IdentityError> {
        let ctx = self.ctx()?;
        tss_esapi::utils::get_tpm_vendor(ctx).map_err(tss("read the TPM vendor"))
    }
}

/// Why opening the TCTI failed, in words: a missing device node is the common case on hardware.
fn connect_failure(tcti: &str, err: &tss_esapi::Error) -> String {
    if let Some(path) = tcti.strip_prefix("device:").filter(|p| !p.is_empty())
        && !std::path::Path::new(path).exists()
    {
        return format!("{path} does not exist (no TPM, or its driver is not loaded)");
    }
    match raw_code(err) {
        Some(code) => format!("no TPM answers there (TSS code {code:#x})"),
        None => format!("no TPM answers there ({err})"),
    }
}
