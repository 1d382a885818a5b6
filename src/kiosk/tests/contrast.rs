//! Text contrast of the kiosk's theme: every text/background pair listed in
//! `ui/theme-pairs.txt` must reach 7:1 (WCAG AAA). The colours are read from `ui/theme.slint`
//! itself, so the table cannot drift from what the screens draw.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn ui_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui")
}

/// `out property <color> name: #rrggbb;` lines of theme.slint.
fn theme_colours() -> BTreeMap<String, [u8; 3]> {
    let text = std::fs::read_to_string(ui_dir().join("theme.slint")).expect("ui/theme.slint");
    text.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("out property <color> ")?;
            let (name, value) = rest.split_once(':')?;
            let hex = value.trim().strip_prefix('#')?.strip_suffix(';')?;
            let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
            (hex.len() == 6).then_some(())?;
            Some((name.trim().to_string(), [byte(0)?, byte(2)?, byte(4)?]))
        })
        .collect()
}

/// WCAG relative luminance of an sRGB colour.
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
}

fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

#[test]
fn the_contrast_formula_gives_the_known_extremes() {
    assert!((contrast([0, 0, 0], [255, 255, 255]) - 21.0).abs() < 0.01);
    assert!((contrast([119, 119, 119], [255, 255, 255]) - 4.48).abs() < 0.01);
}

#[test]
fn every_text_colour_on_its_backgrounds_reaches_seven_to_one() {
    let colours = theme_colours();
    assert!(colours.len() >= 10, "theme.slint colours not found: {colours:?}");
    let pairs = std::fs::read_to_string(ui_dir().join("theme-pairs.txt")).expect("pairs");
    let mut failures = vec![];
    let mut checked = 0;
    for line in pairs.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (text, background) = line.split_once(' ').expect("pair: TEXT BACKGROUND");
        let colour = |name: &str| {
            *colours.get(name.trim()).unwrap_or_else(|| panic!("{name} is not in theme.slint"))
        };
        let ratio = contrast(colour(text), colour(background));
        println!("{text:>12} on {background:<20} {ratio:5.2}:1");
        checked += 1;
        if ratio < 7.0 {
            failures.push(format!("{text} on {background}: {ratio:.2}:1"));
        }
    }
    assert!(checked >= 10, "too few pairs listed");
    assert!(failures.is_empty(), "below 7:1: {failures:?}");
}
