//! What the claims of a verified ID token from the identity provider make of a console user:
//! their role (from the roles claim), clinics (from the clinics claim), user name
//! (`preferred_username`, else `email`, else `sub`) and whether a second factor was used (`amr`,
//! RFC 8176). Pure: plain JSON in, plain data or a [`Refusal`] out; no I/O, no logging. Never
//! puts a claim's value into a refusal (a refusal is shown on the sign-in page and audited).

use serde_json::{Map, Value};

use super::{check_clinics, check_username};
use crate::access::Role;

/// Which claims hold the role and the clinics (`--oidc-roles-claim`, `--oidc-clinics-claim`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub roles: String,
    pub clinics: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self { roles: "telekiosk_roles".into(), clinics: "telekiosk_clinics".into() }
    }
}

/// A user as the identity provider describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The provider's stable id for them (`sub`).
    pub subject: String,
    /// The name fleetd knows them by (on first sign-in only: an account keeps its name).
    pub username: String,
    pub role: Role,
    pub clinics: Vec<String>,
    /// Whether `amr` shows a second factor.
    pub mfa: bool,
    /// The `amr` values, as sent (method names such as `pwd`, `otp`: no personal data).
    pub amr: Vec<String>,
}

/// Why the claims do not make a console user. Each has a short code (for the sign-in page's
/// address and the audit trail) and a sentence for the person signing in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("your identity provider gives you no telekiosk role: ask your administrator for one")]
    NoRole,
    #[error(
        "your identity provider gives you more than one telekiosk role: ask your administrator to leave one"
    )]
    SeveralRoles,
    #[error("the clinics your identity provider lists are not in a form telekiosk understands")]
    BadClinics,
    #[error(
        "your identity provider did not record a second factor for this sign-in, which telekiosk requires"
    )]
    NoMfa,
    #[error("your identity provider gave no user name telekiosk can use")]
    NoUsername,
}

impl Refusal {
    /// The code the sign-in page is sent back with (`/?signin_error=CODE`).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NoRole => "no_role",
            Refusal::SeveralRoles => "several_roles",
            Refusal::BadClinics => "bad_clinics",
            Refusal::NoMfa => "no_mfa",
            Refusal::NoUsername => "no_username",
        }
    }
}

/// `amr` values (RFC 8176) that are an authentication factor of their own.
const FACTORS: &[&str] = &[
    "face", "fpt", "hwk", "iris", "kba", "otp", "pin", "pop", "pwd", "retina", "sc", "sms", "swk",
    "tel", "user", "vbm",
];

/// Whether `amr` shows a second factor: `mfa` or `mca` said outright, or two different factors.
pub fn shows_mfa(amr: &[String]) -> bool {
    let mut factors: Vec<&str> =
        amr.iter().map(String::as_str).filter(|m| FACTORS.contains(m)).collect();
    factors.sort_unstable();
    factors.dedup();
    let factors = factors.len();
    amr.iter().any(|m| m == "mfa" || m == "mca") || factors >= 2
}

/// Strings of a claim that is a list of strings, or a single string; `None` if it has another
/// shape. An absent claim is an empty list.
fn strings(claims: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    match claims.get(name) {
        None | Some(Value::Null) => Some(vec![]),
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>()
        }
        Some(_) => None,
    }
}

/// The role among `values`: exactly one of the four telekiosk roles (other values, for other
/// applications, are ignored; the same role twice is one).
fn role_of(values: &[String]) -> Result<Role, Refusal> {
    let mut found: Vec<Role> = values.iter().filter_map(|v| Role::parse(v.trim())).collect();
    found.sort_by_key(|r| r.as_str());
    found.dedup();
    match found.as_slice() {
        [] => Err(Refusal::NoRole),
        [role] => Ok(*role),
        _ => Err(Refusal::SeveralRoles),
    }
}

/// The console user the verified `claims` describe, or why there is none. `require_mfa`:
/// refuse a sign-in whose `amr` shows no second factor.
pub fn map_claims(
    claims: &Map<String, Value>,
    names: &ClaimNames,
    require_mfa: bool,
) -> Result<Mapped, Refusal> {
    let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_string();
    let roles = strings(claims, &names.roles).ok_or(Refusal::NoRole)?;
    let role = role_of(&roles)?;
    let clinics = strings(claims, &names.clinics).ok_or(Refusal::BadClinics)?;
    let clinics = check_clinics(&clinics).map_err(|_| Refusal::BadClinics)?;
    let amr = strings(claims, "amr").unwrap_or_default();
    let mfa = shows_mfa(&amr);
    if require_mfa && !mfa {
        return Err(Refusal::NoMfa);
    }
    let username = ["preferred_username", "email", "sub"]
        .iter()
        .filter_map(|k| claims.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .find(|name| check_username(name).is_ok())
        .ok_or(Refusal::NoUsername)?;
    if subject.is_empty() {
        return Err(Refusal::NoUsername);
    }
    Ok(Mapped { subject, username: username.to_string(), role, clinics, mfa, amr })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(claims: Value) -> Result<Mapped, Refusal> {
        map_with(claims, false)
    }

    fn map_with(claims: Value, require_mfa: bool) -> Result<Mapped, Refusal> {
        map_claims(claims.as_object().unwrap(), &ClaimNames::default(), require_mfa)
    }

    #[test]
    fn a_clinician_with_clinics_and_a_second_factor_is_mapped() {
        let m = map(json!({
            "sub": "248289761001", "preferred_username": "dr.lee", "email": "lee@maple.example",
            "telekiosk_roles": ["clinician"], "telekiosk_clinics": ["Maple Valley Clinic", "North"],
            "amr": ["pwd", "otp"],
        }))
        .unwrap();
        assert_eq!(m.subject, "248289761001");
        assert_eq!(m.username, "dr.lee");
        assert_eq!(m.role, Role::Clinician);
        assert_eq!(m.clinics, ["Maple Valley Clinic", "North"]);
        assert!(m.mfa);
        assert_eq!(m.amr, ["pwd", "otp"]);
    }

    #[test]
    fn no_telekiosk_role_is_refused_and_other_applications_roles_are_ignored() {
        let base = |roles: Value| json!({"sub": "s", "telekiosk_roles": roles});
        assert_eq!(map(json!({"sub": "s"})), Err(Refusal::NoRole));
        assert_eq!(map(base(json!([]))), Err(Refusal::NoRole));
        assert_eq!(map(base(json!(["billing", "root"]))), Err(Refusal::NoRole));
        assert_eq!(map(base(json!(42))), Err(Refusal::NoRole));
        assert_eq!(map(base(json!([1, "admin"]))), Err(Refusal::NoRole));
        assert_eq!(map(base(json!(["billing", "auditor"]))).unwrap().role, Role::Auditor);
        assert_eq!(map(base(json!("technician"))).unwrap().role, Role::Technician);
        assert_eq!(map(base(json!(["admin", "admin"]))).unwrap().role, Role::FleetAdmin);
    }

    #[test]
    fn two_telekiosk_roles_are_refused() {
        let claims = json!({"sub": "s", "telekiosk_roles": ["clinician", "billing", "admin"]});
        assert_eq!(map(claims), Err(Refusal::SeveralRoles));
    }

    #[test]
    fn clinics_are_optional_but_must_be_names() {
        let base = |clinics: Value| json!({"sub": "s", "telekiosk_roles": ["technician"], "telekiosk_clinics": clinics});
        assert!(
            map(json!({"sub": "s", "telekiosk_roles": ["auditor"]})).unwrap().clinics.is_empty()
        );
        assert_eq!(map(base(json!("North"))).unwrap().clinics, ["North"]);
        assert_eq!(map(base(json!([" North ", "North"]))).unwrap().clinics, ["North"]);
        assert_eq!(map(base(json!({"a": 1}))), Err(Refusal::BadClinics));
        assert_eq!(map(base(json!(["North", 7]))), Err(Refusal::BadClinics));
        assert_eq!(map(base(json!([""]))), Err(Refusal::BadClinics));
        assert_eq!(map(base(json!(["a\u{7}b"]))), Err(Refusal::BadClinics));
        assert_eq!(map(base(json!(["x".repeat(129)]))), Err(Refusal::BadClinics));
    }

    #[test]
    fn the_claim_names_are_configurable() {
        let names = ClaimNames { roles: "groups".into(), clinics: "sites".into() };
        let claims = json!({"sub": "s", "groups": ["clinician"], "sites": ["East"],
            "telekiosk_roles": ["admin"]});
        let m = map_claims(claims.as_object().unwrap(), &names, false).unwrap();
        assert_eq!((m.role, m.clinics), (Role::Clinician, vec!["East".to_string()]));
    }

    #[test]
    fn a_second_factor_is_read_from_amr() {
        let amr = |v: &[&str]| shows_mfa(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(amr(&["pwd", "otp"]));
        assert!(amr(&["mfa"]));
        assert!(amr(&["hwk", "user"]));
        assert!(!amr(&["pwd"]));
        assert!(!amr(&["pwd", "pwd"]), "the same factor twice is one factor");
        assert!(!amr(&[]));
        assert!(!amr(&["pwd", "rba"]), "risk-based is not a factor");
        let claims = |amr: Value| json!({"sub": "s", "telekiosk_roles": ["admin"], "amr": amr});
        assert!(!map(claims(json!("pwd"))).unwrap().mfa);
        assert!(!map(claims(json!({"x": 1}))).unwrap().mfa, "an odd amr is no second factor");
        assert!(!map(json!({"sub": "s", "telekiosk_roles": ["admin"]})).unwrap().mfa);
    }

    #[test]
    fn without_a_second_factor_a_sign_in_is_refused_when_one_is_required() {
        let claims = |amr: Value| json!({"sub": "s", "telekiosk_roles": ["admin"], "amr": amr});
        assert_eq!(map_with(claims(json!(["pwd"])), true), Err(Refusal::NoMfa));
        assert_eq!(
            map_with(json!({"sub": "s", "telekiosk_roles": ["admin"]}), true),
            Err(Refusal::NoMfa)
        );
        assert!(map_with(claims(json!(["pwd", "otp"])), true).unwrap().mfa);
        assert!(map_with(claims(json!(["pwd"])), false).is_ok());
    }

    #[test]
    fn the_user_name_is_the_preferred_one_else_the_email_else_the_subject() {
        let role = json!(["clinician"]);
        let m = |c: Value| map(c).map(|m| m.username);
        let all = json!({"sub": "s1", "preferred_username": "lee", "email": "lee@x.example",
            "telekiosk_roles": role});
        assert_eq!(m(all).unwrap(), "lee");
        let email = json!({"sub": "s1", "email": "lee@x.example", "telekiosk_roles": role});
        assert_eq!(m(email).unwrap(), "lee@x.example");
        assert_eq!(m(json!({"sub": "s1", "telekiosk_roles": role})).unwrap(), "s1");
        // A name fleetd cannot use (a space) falls through to the next.
        let spaced = json!({"sub": "s1", "preferred_username": "Dr Lee", "telekiosk_roles": role});
        assert_eq!(m(spaced).unwrap(), "s1");
        let none = json!({"sub": "a subject with spaces", "telekiosk_roles": role});
        assert_eq!(m(none), Err(Refusal::NoUsername));
        let no_sub = json!({"preferred_username": "lee", "telekiosk_roles": role});
        assert_eq!(m(no_sub), Err(Refusal::NoUsername));
    }

    #[test]
    fn a_refusal_never_carries_a_claim_value() {
        for r in [Refusal::NoRole, Refusal::SeveralRoles, Refusal::BadClinics, Refusal::NoMfa] {
            assert!(!r.to_string().contains('"'), "{r}");
            assert!(r.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
}
