// @ts-check
// What the consoles exchange with fleetd, as JSDoc types: the JSON of the `/ws` messages and of
// the API bodies. Types only, no code. The Rust types in `src/protocol` are the source of truth
// (`console.rs`, `api.rs`, `api/admin.rs`, `api/visit_codes.rs`, `device.rs`, `command.rs`,
// `visit.rs`); keep these in step with them. Times are Unix seconds.

// ---------- sign-in (api.rs) ----------

/**
 * `POST /api/login`.
 * @typedef {object} LoginRequest
 * @property {string} username
 * @property {string} password
 */

/**
 * `GET /api/me` and a successful login: who is signed in.
 * @typedef {object} Me
 * @property {string} username
 * @property {'clinician' | 'admin' | 'auditor' | 'technician'} role
 * @property {string[]} clinics assigned clinics (a clinician's visits, a technician's kiosks); empty for admin and auditor
 */

/**
 * Any refused request, in plain words.
 * @typedef {object} ApiError
 * @property {string} error
 */

// ---------- the clinician console's WebSocket, /ws (console.rs, visit.rs) ----------

/**
 * One ICE candidate. An empty `candidate` means end of candidates.
 * @typedef {object} Ice
 * @property {number} mline index of the m-line
 * @property {string} candidate the `candidate:` line, without `a=`
 */

/**
 * A STUN or TURN server (config.rs).
 * @typedef {object} IceServer
 * @property {string[]} urls `stun:`, `turn:` or `turns:`
 * @property {string} [username]
 * @property {string} [credential]
 */

/**
 * How the browser may reach the kiosk, with TURN credentials minted for one visit.
 * @typedef {object} IceSettings
 * @property {IceServer[]} [servers]
 * @property {boolean} [relay_only]
 */

/**
 * Why a visit ended.
 * @typedef {'patient_ended' | 'patient_cancelled' | 'clinician_ended' | 'no_clinician'
 *   | 'connection_lost' | 'clinician_left' | 'protocol_error' | 'kiosk_fault' | 'time_limit'
 *   | 'security_check_failed'} EndReason
 */

/**
 * The kiosk's half of a visit's end-to-end key agreement (e2ee.rs): its ephemeral P-256 key and
 * the device key's signature over it, the visit id and the offer's DTLS fingerprint (base64url).
 * @typedef {object} KioskKey
 * @property {string} public_key
 * @property {string} signature
 */

/**
 * The console's half: its ephemeral key and its key confirmation (base64url).
 * @typedef {object} ConsoleKey
 * @property {string} public_key
 * @property {string} confirm
 */

/**
 * Which end-to-end check failed.
 * @typedef {'kiosk_signature' | 'fingerprint' | 'key_confirmation' | 'unknown_device'} SecurityCheck
 */

/**
 * A kiosk UI language (config.rs).
 * @typedef {'en' | 'es'} Language
 */

/**
 * One kiosk waiting for a clinician. No patient data.
 * @typedef {object} WaitingVisit
 * @property {string} visit_id
 * @property {string} device_id
 * @property {string} clinic
 * @property {string} room
 * @property {number} waiting_secs seconds waited when the list was sent
 * @property {Language} [language] the language the patient chose on the kiosk; absent: the clinic's default
 * @property {boolean} [for_you] the patient came with a visit code this clinician made (no one else sees the visit)
 */

/**
 * A patient's call for help from a kiosk ("Get help from staff"), open until a staff member
 * answers it. No patient data.
 * @typedef {object} HelpAlert
 * @property {string} visit_id names the alert
 * @property {string} device_id
 * @property {string} clinic
 * @property {string} room
 * @property {number} waiting_secs seconds since the patient asked, when the list was sent
 */

/**
 * What the console sends to fleetd. `emergency_join`: emergency access to a visit of a clinic
 * not assigned to this clinician; `reason` (1–500 bytes) goes to the audit trail.
 * @typedef {{ type: 'join', visit_id: string }
 *   | { type: 'emergency_join', visit_id: string, reason: string }
 *   | { type: 'answer', visit_id: string, sdp: string, e2ee: ConsoleKey }
 *   | { type: 'security_refused', visit_id: string, check: SecurityCheck }
 *   | { type: 'ice', visit_id: string, ice: Ice }
 *   | { type: 'end', visit_id: string }
 *   | { type: 'resume', visit_id: string }
 *   | { type: 'answer_help', visit_id: string }} ConsoleToServer
 */

/**
 * What fleetd sends to the console.
 * @typedef {{ type: 'queue', waiting: WaitingVisit[] }
 *   | { type: 'joined', visit_id: string, clinic: string, room: string, ice?: IceSettings }
 *   | { type: 'already_taken', visit_id: string }
 *   | { type: 'offer', visit_id: string, sdp: string, e2ee: KioskKey, device_key: string }
 *   | { type: 'key_confirm', visit_id: string, confirm: string }
 *   | { type: 'ice', visit_id: string, ice: Ice }
 *   | { type: 'ended', visit_id: string, reason: EndReason }
 *   | { type: 'resumed', visit_id: string, clinic: string, room: string }
 *   | { type: 'error', message: string }
 *   | { type: 'help', alerts: HelpAlert[] }} ServerToConsole
 */

// ---------- visit codes, /api/visit-codes (api/visit_codes.rs) ----------

/**
 * `POST /api/visit-codes`: make a code for a patient with an appointment.
 * @typedef {object} NewVisitCode
 * @property {string} clinic one of the clinician's clinics
 * @property {number} [valid_mins] 15 to 10080 (7 days); 1440 (24 hours) when absent
 */

/**
 * The code just made: its digits are shown this once.
 * @typedef {object} VisitCode
 * @property {string} code six digits
 * @property {string} id short id, as the list names it (not a secret)
 * @property {string} clinic
 * @property {number} expires_at Unix seconds
 */

/**
 * `GET /api/visit-codes`: one of the clinician's codes that still work, without its digits.
 * @typedef {object} VisitCodeInfo
 * @property {string} id for `DELETE /api/visit-codes/{id}`
 * @property {string} clinic
 * @property {number} created_at Unix seconds
 * @property {number} expires_at Unix seconds
 * @property {boolean} [in_use] a patient is using it (it works again if they leave before anyone joins)
 */

// ---------- the admin API, /api/admin (api.rs, api/admin.rs, device.rs, command.rs) ----------

/**
 * @typedef {'pending' | 'active' | 'revoked'} DeviceStatus
 */

/**
 * A device's registry record (`GET /api/admin/devices`).
 * @typedef {object} DeviceInfo
 * @property {string} id
 * @property {string} clinic
 * @property {string} room
 * @property {DeviceStatus} status
 * @property {number} created_at
 * @property {number | null} approved_at
 * @property {number | null} revoked_at
 * @property {string | null} cert_serial
 * @property {string | null} cert_fingerprint
 * @property {string} key_fingerprint
 * @property {number | null} [cert_expires_at]
 */

/**
 * @typedef {'ok' | 'missing' | 'failed' | 'unknown'} PartStatus
 */

/**
 * @typedef {object} Health
 * @property {PartStatus} camera
 * @property {PartStatus} microphone
 * @property {PartStatus} speaker
 * @property {PartStatus} tpm
 */

/**
 * The last call's link at its worst.
 * @typedef {object} NetworkQuality
 * @property {number} rtt_ms
 * @property {number} loss_permille tenths of a percent
 * @property {number} min_estimate_kbps 0: unknown
 * @property {'' | 'good' | 'fair' | 'poor'} worst_level
 * @property {number} video_paused_secs
 */

/**
 * @typedef {object} ConfigRefusal
 * @property {number} version
 * @property {string} reason
 */

/**
 * A kiosk's latest reported state.
 * @typedef {object} DeviceState
 * @property {'online' | 'offline'} presence
 * @property {string} software
 * @property {string} clinic
 * @property {string} room
 * @property {number} config_version
 * @property {ConfigRefusal} [config_refusal]
 * @property {number} uptime_secs
 * @property {Health} health
 * @property {NetworkQuality} [network]
 * @property {{ ended_at: number, duration_secs: number }} [last_visit]
 * @property {OsState} [os] on an appliance image
 */

/**
 * The kiosk's operating system (`update.rs`).
 * @typedef {object} OsState
 * @property {string} version the running image's version
 * @property {string} slot `A` or `B`
 * @property {boolean} trial booted into a new version not yet marked good
 * @property {{ version: string, phase: 'downloading' | 'waiting_for_visit' | 'installing' | 'waiting_to_reboot' | 'rebooting', done_bytes: number, total_bytes: number }} [update]
 * @property {{ version: string, reason: string }} [failed] the latest update that did not take
 */

/**
 * A device with its latest state (`GET /api/admin/fleet`).
 * @typedef {DeviceInfo & {
 *   state: DeviceState | null,
 *   last_seen: number | null,
 *   published_version: number | null,
 * }} FleetDevice
 */

/**
 * @typedef {object} PublishedConfig
 * @property {number} version
 * @property {number} rollout_id
 * @property {number} published_at
 */

/**
 * One device's config (`GET /api/admin/config/devices/{id}`).
 * @typedef {object} DeviceConfig
 * @property {string} device_id
 * @property {string} group
 * @property {object | null} override the device's partial override
 * @property {object | null} effective group body + override, checked
 * @property {string | null} error why they do not combine
 * @property {PublishedConfig | null} published
 * @property {number | null} applied_version
 * @property {ConfigRefusal | null} refusal
 */

/**
 * What a kiosk is told to do.
 * @typedef {{ type: 'reboot' } | { type: 'restart_app' } | { type: 'identify', seconds: number }
 *   | { type: 'collect_diagnostics' } | { type: 'probe_hardware' }
 *   | { type: 'install_update', version: string, sha256: string, size: number, reboot_in_opening_hours: boolean, health_timeout_secs: number }} Command
 */

/**
 * What `telekiosk probe` found: the detail of a `probe_hardware` command's result (JSON text).
 * @typedef {object} ProbeReport
 * @property {string} software
 * @property {{ model: string, arch: string, cpus: number }} machine
 * @property {{ name: string, hardware: boolean, outcome: EncodeOutcome }[]} encoders
 * @property {{ name: string, device: string, stable_name: string, modes: string[] }[]} cameras
 * @property {{ name: string, source: string }[]} microphones
 * @property {{ name: string, source: string }[]} speakers
 * @property {{ tcti: string, ok: boolean, detail: string }} tpm
 * @property {{ connector: string, connected: boolean, modes: string[], width_mm: number | null,
 *   height_mm: number | null, px_per_mm: number | null }[]} displays
 * @property {{ device: string, identity: string, active: boolean, timeout_secs: number | null }[]} [watchdogs]
 *   absent in reports of kiosks from before it was probed
 * @property {{ profile: string | null, why: string, warnings: string[] }} suggestion
 */

/**
 * @typedef {{ status: 'missing' } | { status: 'failed', error: string }
 *   | { status: 'encoded', frames: number, fps: number, cpu_percent: number, kbps: number }} EncodeOutcome
 */

/**
 * `POST /api/admin/devices/{id}/commands`.
 * @typedef {object} NewCommand
 * @property {Command} command
 */

/**
 * @typedef {object} CommandResult
 * @property {string} command_id
 * @property {'done' | 'deferred' | 'refused'} outcome
 * @property {string} detail
 */

/**
 * A command and its latest result.
 * @typedef {object} CommandInfo
 * @property {string} command_id
 * @property {string} device_id
 * @property {Command} command
 * @property {'queued' | 'sent' | 'answered' | 'expired'} status
 * @property {number} created_at
 * @property {string} created_by
 * @property {number | null} issued_at
 * @property {number | null} expires_at
 * @property {CommandResult | null} result
 * @property {number | null} result_at
 */

/**
 * One device in full (`GET /api/admin/devices/{id}`): its registry record and fleet view,
 * config and latest commands (latest first).
 * @typedef {FleetDevice & { config: DeviceConfig, commands: CommandInfo[] }} DeviceDetail
 */

/**
 * `PUT /api/admin/config/groups/{group}` and `…/devices/{id}`.
 * @typedef {object} ConfigDraft
 * @property {object} body
 */

/**
 * A group's (clinic's) config as stored.
 * @typedef {object} GroupConfig
 * @property {string} group
 * @property {object} body as authored (`{}` when none was set)
 * @property {boolean} is_set
 * @property {number | null} updated_at
 * @property {string | null} updated_by
 * @property {number} devices active devices in the group
 * @property {object} defaults the schema's defaults
 */

/**
 * `POST /api/admin/rollouts` and `/api/admin/rollback`.
 * @typedef {object} NewRollout
 * @property {string} group
 * @property {string[]} [canary]
 * @property {number} [first_wave_percent] 1–100
 * @property {number} [failure_threshold_percent] 0–100
 * @property {number} [wave_timeout_secs] 10–86400
 */

/**
 * @typedef {'running' | 'paused' | 'completed' | 'halted' | 'aborted'} RolloutStatus
 */

/**
 * Counts for one wave.
 * @typedef {object} WaveInfo
 * @property {number} wave 1-based
 * @property {number} devices
 * @property {number} acked
 * @property {number} pending
 * @property {number} failed
 * @property {number} not_sent
 */

/**
 * @typedef {object} RolloutDevice
 * @property {string} device_id
 * @property {number} wave
 * @property {'not_sent' | 'pending' | 'acked' | 'refused' | 'timed_out'} outcome
 * @property {string} [reason] the kiosk's reason for a refusal
 */

/**
 * A rollout (`GET /api/admin/rollouts`; `devices` only from `…/rollouts/{id}`).
 * @typedef {object} RolloutInfo
 * @property {number} id
 * @property {string} group
 * @property {number} version
 * @property {'rollout' | 'rollback'} kind
 * @property {RolloutStatus} status
 * @property {number} created_at
 * @property {string} created_by
 * @property {number} updated_at
 * @property {string[]} canary
 * @property {number} first_wave_percent
 * @property {number} failure_threshold_percent
 * @property {number} wave_timeout_secs
 * @property {number} current_wave
 * @property {WaveInfo[]} waves
 * @property {number} targeted
 * @property {number} failed
 * @property {string | null} halt_reason
 * @property {RolloutDevice[]} [devices]
 */

/**
 * An OS update rollout (`GET /api/admin/updates`; `devices` only from `…/updates/{id}`):
 * a rollout's waves and plan, with the bundle it installs (`api/updates.rs`).
 * @typedef {Omit<RolloutInfo, 'version' | 'kind'> & {
 *   version: string,
 *   sha256: string,
 *   size: number,
 *   reboot_in_opening_hours: boolean,
 *   health_timeout_secs: number,
 * }} UpdateInfo
 */

/**
 * A group (clinic) at a glance (`GET /api/admin/groups`).
 * @typedef {object} GroupInfo
 * @property {string} group
 * @property {number} devices
 * @property {number} online
 * @property {boolean} has_config
 * @property {RolloutInfo | null} latest_rollout
 */

export {};

/**
 * One console account as an admin sees it (`GET /api/admin/users`).
 * @typedef {object} UserInfo
 * @property {string} username
 * @property {string} role
 * @property {number} created_at
 * @property {boolean} disabled
 * @property {boolean} mfa whether two-step sign-in is set up
 * @property {number} failures failed sign-ins since the last success or unlock
 * @property {number} [locked_until] Unix seconds until which sign-in is refused
 * @property {string} [identity_provider] issuer URL of the identity provider the account signs in through; absent for a local account
 */

/**
 * `GET /api/oidc` (public): whether sign-in through an identity provider is offered.
 * @typedef {object} OidcInfo
 * @property {boolean} enabled
 * @property {string} label the button's words, e.g. "Sign in with Maple Health"
 */
