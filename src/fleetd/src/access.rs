//! Who may do what: the four roles, the permissions they grant ([`allows`], one table), and
//! the clinic scope that limits clinicians and technicians to their own clinics ([`Scope`]).
//!
//! Pure: plain data and plain functions, no I/O, no logging. Must never grant anything the
//! table below does not: every HTTP route group and the signalling router ask here.

use telekiosk_protocol::command::Command;

/// What a user is. Stored (and typed on the command line) as [`Role::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Role {
    /// Runs the fleet: devices, config, rollouts, users. Does not join visits.
    #[value(name = "admin")]
    FleetAdmin,
    /// Joins the visits of the clinics assigned to them.
    Clinician,
    /// Reads and exports the audit trail, nothing else.
    Auditor,
    /// Issues enrolment codes and identifies or diagnoses the kiosks of their clinics.
    Technician,
}

impl Role {
    /// Every role, in the order the table lists them.
    pub const ALL: [Role; 4] = [Role::FleetAdmin, Role::Clinician, Role::Auditor, Role::Technician];

    /// The name stored in the database, shown by the API and typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::FleetAdmin => "admin",
            Role::Clinician => "clinician",
            Role::Auditor => "auditor",
            Role::Technician => "technician",
        }
    }

    /// The role stored as `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role acts on the whole fleet rather than on its assigned clinics.
    pub fn fleet_wide(self) -> bool {
        matches!(self, Role::FleetAdmin | Role::Auditor)
    }
}

/// Something a role may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// List, inspect, approve and revoke devices; any command (reboot, restart) on any kiosk.
    ManageDevices,
    /// Read and change group and device config.
    ManageConfig,
    /// Start, follow, pause, resume, abort and roll back rollouts.
    ManageRollouts,
    /// Add users, change their role and clinics.
    ManageUsers,
    /// Issue enrolment codes (a technician: for their clinics only).
    IssueEnrolCodes,
    /// Identify and diagnostics commands, and their results (a technician: their clinics).
    DiagnoseKiosks,
    /// See the waiting queue and join visits (of the clinics assigned).
    JoinVisits,
    /// Read and export the audit trail.
    ReadAudit,
}

impl Permission {
    /// Every permission, in the order the table lists them.
    #[cfg(test)]
    pub const ALL: [Permission; 8] = [
        Permission::ManageDevices,
        Permission::ManageConfig,
        Permission::ManageRollouts,
        Permission::ManageUsers,
        Permission::IssueEnrolCodes,
        Permission::DiagnoseKiosks,
        Permission::JoinVisits,
        Permission::ReadAudit,
    ];

    /// What it is, in words for a refusal: "You may not {describe}."
    pub fn describe(self) -> &'static str {
        match self {
            Permission::ManageDevices => "manage devices",
            Permission::ManageConfig => "change kiosk config",
            Permission::ManageRollouts => "run rollouts",
            Permission::ManageUsers => "manage users",
            Permission::IssueEnrolCodes => "issue enrolment codes",
            Permission::DiagnoseKiosks => "identify or diagnose kiosks",
            Permission::JoinVisits => "join visits",
            Permission::ReadAudit => "read the audit trail",
        }
    }
}

/// The permission table: whether `role` may do `permission` at all. Clinic scope comes on top
/// (see [`Scope::reaches`]).
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match role {
        Role::FleetAdmin => matches!(
            permission,
            ManageDevices
                | ManageConfig
                | ManageRollouts
                | ManageUsers
                | IssueEnrolCodes
                | DiagnoseKiosks
        ),
        Role::Clinician => matches!(permission, JoinVisits),
        Role::Auditor => matches!(permission, ReadAudit),
        Role::Technician => matches!(permission, IssueEnrolCodes | DiagnoseKiosks),
    }
}

/// What a command on a kiosk needs: identify and diagnostics are a technician's; reboot and
/// restart are the fleet admin's.
pub fn command_permission(command: &Command) -> Permission {
    match command {
        Command::Identify { .. } | Command::CollectDiagnostics | Command::ProbeHardware => {
            Permission::DiagnoseKiosks
        }
        Command::Reboot | Command::RestartApp => Permission::ManageDevices,
        // An OS update goes through an update rollout, whose waves and threshold protect the fleet.
        Command::InstallUpdate(_) => Permission::ManageRollouts,
    }
}

/// A user's role and the clinics assigned to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// What they are.
    pub role: Role,
    /// Clinic names, as in the device registry (a kiosk's enrolment record).
    pub clinics: Vec<String>,
}

impl Scope {
    /// A scope of `role` over `clinics`.
    pub fn new(role: Role, clinics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { role, clinics: clinics.into_iter().map(Into::into).collect() }
    }

    /// Whether this user may do `permission` at all.
    pub fn may(&self, permission: Permission) -> bool {
        allows(self.role, permission)
    }

    /// Whether `clinic` is within reach: every clinic for a fleet-wide role, else only the
    /// clinics assigned.
    pub fn reaches(&self, clinic: &str) -> bool {
        self.role.fleet_wide() || self.clinics.iter().any(|c| c == clinic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Scope {
        fn allows_in(&self, permission: Permission, clinic: &str) -> bool {
            self.may(permission) && self.reaches(clinic)
        }
    }

    /// The issue's description, cell by cell: fleet admin = devices, config, rollouts, users
    /// (and the enrolment codes and kiosk commands that come with devices), never visits;
    /// clinician = visits only; auditor = the audit trail only; technician = enrolment codes
    /// and identify/diagnostics.
    #[test]
    fn every_cell_of_the_permission_table_matches_the_roles_described() {
        use Permission::*;
        #[rustfmt::skip]
        let table: [(Permission, [bool; 4]); 8] = [
            //                 admin  clinician auditor technician
            (ManageDevices,   [true,  false,    false,  false]),
            (ManageConfig,    [true,  false,    false,  false]),
            (ManageRollouts,  [true,  false,    false,  false]),
            (ManageUsers,     [true,  false,    false,  false]),
            (IssueEnrolCodes, [true,  false,    false,  true ]),
            (DiagnoseKiosks,  [true,  false,    false,  true ]),
            (JoinVisits,      [false, true,     false,  false]),
            (ReadAudit,       [false, false,    true,   false]),
        ];
        assert_eq!(table.map(|(p, _)| p), Permission::ALL, "a permission has no row");
        for (permission, row) in table {
            for (role, expected) in Role::ALL.into_iter().zip(row) {
                assert_eq!(allows(role, permission), expected, "{role:?} × {permission:?}");
            }
        }
    }

    #[test]
    fn roles_keep_their_stored_names_and_admin_stays_admin() {
        let names = Role::ALL.map(Role::as_str);
        assert_eq!(names, ["admin", "clinician", "auditor", "technician"]);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("fleetadmin"), None);
    }

    #[test]
    fn a_clinician_or_technician_reaches_only_their_clinics_and_an_admin_every_clinic() {
        let clinician = Scope::new(Role::Clinician, ["North"]);
        assert!(clinician.allows_in(Permission::JoinVisits, "North"));
        assert!(!clinician.allows_in(Permission::JoinVisits, "South"));
        let technician = Scope::new(Role::Technician, ["North", "East"]);
        assert!(technician.allows_in(Permission::DiagnoseKiosks, "East"));
        assert!(!technician.allows_in(Permission::DiagnoseKiosks, "South"));
        let admin = Scope::new(Role::FleetAdmin, Vec::<String>::new());
        assert!(admin.allows_in(Permission::DiagnoseKiosks, "South"));
        assert!(!admin.allows_in(Permission::JoinVisits, "South"), "an admin joined a visit");
        let auditor = Scope::new(Role::Auditor, Vec::<String>::new());
        assert!(!auditor.allows_in(Permission::JoinVisits, "North"));
    }

    #[test]
    fn identify_and_diagnostics_are_diagnosis_and_reboot_is_device_management() {
        assert_eq!(
            command_permission(&Command::Identify { seconds: 5 }),
            Permission::DiagnoseKiosks
        );
        assert_eq!(command_permission(&Command::CollectDiagnostics), Permission::DiagnoseKiosks);
        assert_eq!(command_permission(&Command::ProbeHardware), Permission::DiagnoseKiosks);
        assert_eq!(command_permission(&Command::Reboot), Permission::ManageDevices);
        assert_eq!(command_permission(&Command::RestartApp), Permission::ManageDevices);
    }
}
