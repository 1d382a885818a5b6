//! X.509 nameConstraints for a new fleet CA (review M11): what the CA may vouch for, so that
//! whoever steals its key cannot impersonate other sites (an EHR, mail) to the browsers and
//! kiosks that trust it.
//!
//! Permitted: the DNS names the server certificate names when the CA is made (`localhost`, the
//! host name, every `--server-name`) and their sub-domains; IP addresses on loopback and the
//! private ranges (RFC 1918, shared address space, IPv6 unique-local) plus every IP address
//! named then. Device certificates are not affected: a device is named only by its subject CN
//! (`dev-…`, no subjectAltName), and DNS and IP constraints apply to subjectAltNames.
//! directoryName constraints are not used: rustls-webpki (kiosks, fleetd's MQTT client) refuses
//! every certificate under a CA that has them.
//!
//! An existing CA keeps what it has (kiosks pin it; replacing it means enrolling every kiosk
//! again), and a name added later that the constraints do not cover is reported at start. Pure:
//! no files, no clock.

use std::net::IpAddr;

use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};

/// Address ranges a fleetd on a private network may be reached on.
const PRIVATE: [(&str, u8); 8] = [
    ("127.0.0.0", 8),
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("100.64.0.0", 10),
    ("::1", 128),
    ("fc00::", 7),
    ("::ffff:127.0.0.0", 104),
];

/// The constraints for a CA whose server certificate names `names` (see
/// [`super::server_names`]).
pub fn for_names(names: &[String]) -> NameConstraints {
    let mut permitted = vec![GeneralSubtree::DnsName("localhost".into())];
    for name in names {
        let subtree = match name.parse::<IpAddr>() {
            Ok(ip) => GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip, full(ip))),
            Err(_) => GeneralSubtree::DnsName(name.to_ascii_lowercase()),
        };
        if !permitted.contains(&subtree) {
            permitted.push(subtree);
        }
    }
    for (net, prefix) in PRIVATE {
        let net: IpAddr = net.parse().expect("a valid constant network");
        permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(net, prefix)));
    }
    NameConstraints { permitted_subtrees: permitted, excluded_subtrees: Vec::new() }
}

fn full(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The names in `names` that a CA certificate (DER) with nameConstraints does not permit; empty
/// for a CA without any (made before fleetd set them) or one that permits them all.
pub fn not_permitted(ca_der: &[u8], names: &[String]) -> Vec<String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) else {
        return Vec::new();
    };
    let Some(constraints) = ca.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::NameConstraints(nc) => Some(nc.clone()),
        _ => None,
    }) else {
        return Vec::new();
    };
    let permitted = constraints.permitted_subtrees.unwrap_or_default();
    let allows = |name: &str| match name.parse::<IpAddr>() {
        Ok(ip) => permitted.iter().any(|s| match &s.base {
            GeneralName::IPAddress(raw) => in_subnet(ip, raw),
            _ => false,
        }),
        Err(_) => permitted.iter().any(|s| match &s.base {
            GeneralName::DNSName(base) => {
                let (name, base) = (name.to_ascii_lowercase(), base.to_ascii_lowercase());
                name == base || name.ends_with(&format!(".{base}"))
            }
            _ => false,
        }),
    };
    names.iter().filter(|n| !allows(n)).cloned().collect()
}

/// Whether `ip` is inside the subnet `raw` (address then mask, as in nameConstraints).
fn in_subnet(ip: IpAddr, raw: &[u8]) -> bool {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let n = octets.len();
    raw.len() == 2 * n && (0..n).all(|i| octets[i] & raw[n + i] == raw[i] & raw[n + i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_dir::DataDir;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_new_ca_carries_name_constraints_for_its_server_names_and_private_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let wanted =
            names(&["localhost", "127.0.0.1", "::1", "fleet.clinic.example", "203.0.113.9"]);
        let pki = super::super::ensure_for(DataDir::of(&dir).pki(), "host", &wanted).unwrap();
        let der = super::super::load_certs(&pki.ca_cert).unwrap().remove(0);
        let (_, ca) = x509_parser::parse_x509_certificate(&der).unwrap();
        let nc = ca
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::NameConstraints(nc) => Some((e.critical, nc.clone())),
                _ => None,
            })
            .expect("the CA has a nameConstraints extension");
        let permitted = nc.1.permitted_subtrees.unwrap();
        let dns: Vec<&str> = permitted
            .iter()
            .filter_map(|s| match s.base {
                GeneralName::DNSName(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(dns, ["localhost", "fleet.clinic.example"]);
        assert!(nc.1.excluded_subtrees.is_none_or(|e| e.is_empty()));
        assert!(not_permitted(&der, &wanted).is_empty());
        assert!(
            not_permitted(&der, &names(&["a.fleet.clinic.example", "10.1.2.3", "fd00::7"]))
                .is_empty()
        );
        assert_eq!(
            not_permitted(&der, &names(&["ehr.example", "198.51.100.1", "clinic.example"])),
            ["ehr.example", "198.51.100.1", "clinic.example"]
        );
    }

    #[test]
    fn subnets_match_by_their_mask() {
        assert!(in_subnet("10.9.8.7".parse().unwrap(), &[10, 0, 0, 0, 255, 0, 0, 0]));
        assert!(!in_subnet("11.9.8.7".parse().unwrap(), &[10, 0, 0, 0, 255, 0, 0, 0]));
        assert!(!in_subnet("::1".parse().unwrap(), &[10, 0, 0, 0, 255, 0, 0, 0]));
    }
}
