//! Unit tests of spec parsing and formatting (`spec.rs`).

use std::time::Duration;

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn good_specs_parse() {
    let clean = LinkProfile::clean;
    let cases: Vec<(&str, LinkProfile)> = vec![
        ("floor", LinkProfile::floor()),
        (" lte-poor ", LinkProfile::lte_poor()),
        (
            "rate=300k,delay=150ms,jitter=30ms,loss=5%,queue=100ms",
            LinkProfile {
                rate_bps: Some(300_000),
                delay: 150 * MS,
                jitter: 30 * MS,
                loss: Loss::Bernoulli { p: 0.05 },
                queue: 100 * MS,
            },
        ),
        (
            "rate=2.5M, ge=0.01/0.3/0/0.5",
            LinkProfile {
                rate_bps: Some(2_500_000),
                loss: Loss::GilbertElliott {
                    p_good_to_bad: 0.01,
                    p_bad_to_good: 0.3,
                    loss_in_good: 0.0,
                    loss_in_bad: 0.5,
                },
                ..clean()
            },
        ),
        ("floor,rate=2500k", LinkProfile { rate_bps: Some(2_500_000), ..LinkProfile::floor() }),
        ("floor,loss=0", LinkProfile { loss: Loss::None, ..LinkProfile::floor() }),
        (
            "rate=1500000bps,delay=1.5s",
            LinkProfile { rate_bps: Some(1_500_000), delay: 1500 * MS, ..clean() },
        ),
        (
            "rate=64kbit/s,delay=250us",
            LinkProfile { rate_bps: Some(64_000), delay: MS / 4, ..clean() },
        ),
        ("good,rate=unlimited,delay=0", clean()),
        ("satellite,clean", clean()),
        ("loss=0.02,loss=100%", LinkProfile::outage()),
    ];
    for (spec, expected) in cases {
        assert_eq!(spec.parse::<LinkProfile>(), Ok(expected), "{spec}");
    }
}

#[test]
fn bad_specs_name_the_field() {
    // (spec, field named by the error)
    let cases = [
        ("rate=fast", "rate"),
        ("rate=0", "rate"),
        ("rate=-3k", "rate"),
        ("delay=150", "delay"),
        ("delay=abc ms", "delay"),
        ("floor,jitter=-1ms", "jitter"),
        ("queue=1h", "queue"),
        ("loss=120%", "loss"),
        ("loss=5", "loss"),
        ("ge=0.1/0.2/0.3", "ge"),
        ("ge=0.1/0.2/x/0.4", "ge"),
        ("speed=10M", "speed"),
        ("fibre", "fibre"),
        ("", "spec"),
    ];
    for (spec, field) in cases {
        let error = spec.parse::<LinkProfile>().expect_err(spec);
        assert_eq!(error.field, field, "{spec}: {error}");
        assert!(error.to_string().starts_with(&format!("{field}: ")), "{spec}: {error}");
    }
}

#[test]
fn apply_spec_changes_only_what_it_names_and_nothing_on_error() {
    let mut profile = LinkProfile::floor();
    profile.apply_spec("rate=2500k").unwrap();
    assert_eq!(profile, LinkProfile { rate_bps: Some(2_500_000), ..LinkProfile::floor() });
    let before = profile.clone();
    assert!(profile.apply_spec("delay=1s,rate=bad").is_err());
    assert_eq!(profile, before);
    profile.apply_spec("outage").unwrap();
    assert_eq!(profile, LinkProfile::outage());
}

#[test]
fn display_parses_back_to_the_same_profile() {
    let mut profiles: Vec<LinkProfile> =
        PRESETS.iter().map(|name| LinkProfile::preset(name).unwrap()).collect();
    profiles
        .push("rate=123456,delay=1500us,jitter=7ns,ge=0.01/0.3/0/0.5,queue=1s".parse().unwrap());
    for profile in profiles {
        let text = profile.to_string();
        assert_eq!(text.parse::<LinkProfile>(), Ok(profile), "{text}");
    }
    assert_eq!(
        LinkProfile::floor().to_string(),
        "rate=300k,delay=150ms,jitter=0ms,loss=0.05,queue=100ms"
    );
}
