//! The device registry's tables: enrolment tokens (hashes only), devices, and a generation
//! counter that every change bumps, so another process (`fleetd serve` while the CLI revokes)
//! can notice changes by polling one row. Plain queries, like the rest of [`super`]; those that
//! change a device or token bump the generation themselves, so run them in [`super::Store::write`].

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::StoreError;

/// Migration 2: enrolment tokens, devices, the generation counter.
pub(super) const SCHEMA: &str = "
    CREATE TABLE devices (
        id               TEXT PRIMARY KEY NOT NULL,
        clinic           TEXT NOT NULL,
        room             TEXT NOT NULL,
        public_key       BLOB NOT NULL UNIQUE,
        status           TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
        created_at       INTEGER NOT NULL,
        approved_at      INTEGER,
        approved_by      TEXT,
        revoked_at       INTEGER,
        revoked_by       TEXT,
        cert_pem         TEXT,
        cert_serial      TEXT,
        cert_fingerprint TEXT
    ) STRICT;
    CREATE TABLE enrol_tokens (
        token_hash BLOB PRIMARY KEY NOT NULL,
        clinic     TEXT NOT NULL,
        room       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        device_id  TEXT REFERENCES devices (id)
    ) STRICT;
    CREATE TABLE registry_generation (
        only  INTEGER PRIMARY KEY CHECK (only = 1),
        value INTEGER NOT NULL
    ) STRICT;
    INSERT INTO registry_generation VALUES (1, 0);";

const DEVICE_COLUMNS: &str = "id, clinic, room, public_key, status, created_at, approved_at, \
    revoked_at, cert_pem, cert_serial, cert_fingerprint";

/// One enrolment token, as stored (the token itself is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Clinic the kiosk will stand in.
    pub clinic: String,
    /// Room the kiosk will stand in.
    pub room: String,
    /// When it stops working for a new enrolment (Unix seconds).
    pub expires_at: i64,
    /// The device that used it, if any.
    pub device_id: Option<String>,
}

/// One device, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// `dev-` + 10 base32 characters.
    pub id: String,
    /// Clinic display name.
    pub clinic: String,
    /// Room display name.
    pub room: String,
    /// SEC1 P-256 point from its CSR.
    pub public_key: Vec<u8>,
    /// `pending`, `active` or `revoked`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub approved_at: Option<i64>,
    /// Unix seconds.
    pub revoked_at: Option<i64>,
    /// Its certificate, once approved.
    pub cert_pem: Option<String>,
    /// Serial of its certificate, lowercase hex.
    pub cert_serial: Option<String>,
    /// SHA-256 fingerprint of its certificate.
    pub cert_fingerprint: Option<String>,
}

/// What the enrolment rules decided, given what the store found.
#[derive(Debug)]
pub enum EnrolDecision {
    /// Record this new pending device and bind the token to it.
    Create(DeviceRecord),
    /// Nothing to write: answer with this existing device.
    Existing(DeviceRecord),
}

/// Stores a new token's hash.
pub fn insert_token(
    c: &Connection,
    hash: &[u8],
    token: &TokenRecord,
    created_at: i64,
    created_by: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO enrol_tokens
             (token_hash, clinic, room, created_at, created_by, expires_at, device_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
        params![hash, token.clinic, token.room, created_at, created_by, token.expires_at],
    )?;
    bump(c)
}

/// One enrolment, inside a transaction: finds the token with hash `hash`, the device bound to
/// it and any device holding `public_key`, lets `decide` apply the rules, and writes what it
/// decided (a new device bound to the token) before anyone else can use the token.
pub fn enrol<E: From<StoreError>>(
    c: &Connection,
    hash: &[u8],
    public_key: &[u8],
    decide: impl FnOnce(
        Option<TokenRecord>,
        Option<DeviceRecord>,
        Option<DeviceRecord>,
    ) -> Result<EnrolDecision, E>,
) -> Result<DeviceRecord, E> {
    let token = c
        .query_row(
            "SELECT clinic, room, expires_at, device_id FROM enrol_tokens WHERE token_hash = ?1",
            params![hash],
            |r| {
                Ok(TokenRecord {
                    clinic: r.get(0)?,
                    room: r.get(1)?,
                    expires_at: r.get(2)?,
                    device_id: r.get(3)?,
                })
            },
        )
        .optional()
        .map_err(sql)?;
    let bound = match token.as_ref().and_then(|t| t.device_id.as_deref()) {
        Some(id) => device_where(c, "id = ?1", id).map_err(sql)?,
        None => None,
    };
    let same_key = device_where(c, "public_key = ?1", public_key).map_err(sql)?;
    match decide(token, bound, same_key)? {
        EnrolDecision::Existing(device) => Ok(device),
        EnrolDecision::Create(device) => {
            c.execute(
                "INSERT INTO devices (id, clinic, room, public_key, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
                params![
                    device.id,
                    device.clinic,
                    device.room,
                    device.public_key,
                    device.created_at
                ],
            )
            .map_err(sql)?;
            c.execute(
                "UPDATE enrol_tokens SET device_id = ?1 WHERE token_hash = ?2",
                params![device.id, hash],
            )
            .map_err(sql)?;
            bump(c).map_err(sql)?;
            Ok(device)
        }
    }
}

/// The device with this id, if any.
pub fn device(c: &Connection, id: &str) -> rusqlite::Result<Option<DeviceRecord>> {
    device_where(c, "id = ?1", id)
}

/// [`StoreError::NoSuchDevice`], for a [`device`] lookup of `id` that found none.
pub fn no_such_device(id: &str) -> impl FnOnce() -> StoreError {
    let id = id.to_string();
    move || StoreError::NoSuchDevice(id)
}

/// Every device, oldest first.
pub fn devices(c: &Connection) -> rusqlite::Result<Vec<DeviceRecord>> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY created_at, id");
    c.prepare(&sql)?.query_map([], device_row)?.collect()
}

/// Marks a pending device active with its certificate; `false` if it was not pending.
pub fn approve(
    c: &Connection,
    id: &str,
    cert: &crate::pki::ca::Issued,
    now: i64,
    by: &str,
) -> rusqlite::Result<bool> {
    let approved = change(
        c,
        "UPDATE devices SET status = 'active', approved_at = ?2, approved_by = ?3,
             cert_pem = ?4, cert_serial = ?5, cert_fingerprint = ?6
         WHERE id = ?1 AND status = 'pending'",
        params![id, now, by, cert.pem, cert.serial, cert.fingerprint],
    )?;
    if approved {
        record_cert(c, id, &cert.serial, now)?;
    }
    Ok(approved)
}

/// Marks a pending or active device revoked; `false` if it was revoked already.
pub fn revoke(c: &Connection, id: &str, now: i64, by: &str) -> rusqlite::Result<bool> {
    change(
        c,
        "UPDATE devices SET status = 'revoked', revoked_at = ?2, revoked_by = ?3
         WHERE id = ?1 AND status != 'revoked'",
        params![id, now, by],
    )
}

/// Every certificate of a revoked device, renewed ones included: (device id, serial, when
/// revoked), oldest first.
pub fn revoked_serials(c: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    c.prepare(
        "SELECT id, cert_serial, revoked_at FROM devices
         WHERE status = 'revoked' AND cert_serial IS NOT NULL
         UNION
         SELECT d.id, c.serial, d.revoked_at FROM devices d JOIN device_certs c ON c.device_id = d.id
         WHERE d.status = 'revoked'
         ORDER BY 3, 1, 2",
    )?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
    .collect()
}

/// The registry generation: it changes whenever a token or device changes.
pub fn generation(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT value FROM registry_generation", [], |r| r.get(0))
}

/// Runs an update of one device; bumps the generation if it changed the device.
fn change(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<bool> {
    let changed = c.execute(sql, params)? == 1;
    if changed {
        bump(c)?;
    }
    Ok(changed)
}

/// Bumps the generation, so a running fleetd notices a change made elsewhere (the CLI).
pub fn bump(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("UPDATE registry_generation SET value = value + 1", []).map(drop)
}

fn device_where(
    conn: &Connection,
    condition: &str,
    value: impl rusqlite::ToSql,
) -> rusqlite::Result<Option<DeviceRecord>> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE {condition}");
    conn.query_row(&sql, params![value], device_row).optional()
}

fn device_row(r: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        id: r.get(0)?,
        clinic: r.get(1)?,
        room: r.get(2)?,
        public_key: r.get(3)?,
        status: r.get(4)?,
        created_at: r.get(5)?,
        approved_at: r.get(6)?,
        revoked_at: r.get(7)?,
        cert_pem: r.get(8)?,
        cert_serial: r.get(9)?,
        cert_fingerprint: r.get(10)?,
    })
}

fn sql<E: From<StoreError>>(e: rusqlite::Error) -> E {
    E::from(StoreError::Sql(e))
}

/// Migration: every certificate ever issued to a device, so that revoking a device that renewed
/// its certificate also revokes the older ones still within their validity.
pub(super) const CERTS_SCHEMA: &str = "
    CREATE TABLE device_certs (
        serial    TEXT PRIMARY KEY NOT NULL,
        device_id TEXT NOT NULL REFERENCES devices (id),
        issued_at INTEGER NOT NULL
    ) STRICT;
    INSERT INTO device_certs (serial, device_id, issued_at)
        SELECT cert_serial, id, COALESCE(approved_at, created_at) FROM devices
        WHERE cert_serial IS NOT NULL;";

/// Remembers a certificate issued to a device (for the CRL, should the device be revoked).
fn record_cert(c: &Connection, id: &str, serial: &str, now: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO device_certs (serial, device_id, issued_at) VALUES (?1, ?2, ?3)",
        params![serial, id, now],
    )
    .map(drop)
}

/// Replaces an active device's certificate with a renewed one (same key); `false` if the
/// device is not active (revoked meanwhile).
pub fn renew(
    c: &Connection,
    id: &str,
    cert: &crate::pki::ca::Issued,
    now: i64,
) -> rusqlite::Result<bool> {
    let renewed = change(
        c,
        "UPDATE devices SET cert_pem = ?2, cert_serial = ?3, cert_fingerprint = ?4
         WHERE id = ?1 AND status = 'active'",
        params![id, cert.pem, cert.serial, cert.fingerprint],
    )?;
    if renewed {
        record_cert(c, id, &cert.serial, now)?;
    }
    Ok(renewed)
}
