//! The screen's buttons as [`Press`]es: from Slint's `Api.act` / `Api.digit` callbacks, from
//! the headless control's names (`tap join`), and by accessible label through the real pointer
//! path (`tap "Yes, end"`). Holds no visit logic: what a press means is the visit's business.

use slint::ComponentHandle;

use super::{Action, Api, KioskWindow, headless};

/// Button presses from the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    Join,
    Code,
    Digit(u8),
    Delete,
    CodeOk,
    Accept,
    Decline,
    Cancel,
    End,
    EndYes,
    EndNo,
    Mute,
    Camera,
    VolumeUp,
    VolumeDown,
    HideSelf,
    Language,
    LargerText,
    Help,
    StillHere,
}

impl Press {
    /// The button a name of the headless control (`tap join`) stands for: the old names
    /// (join, cancel, end, mute, camera) and one per new button.
    pub fn named(name: &str) -> Option<Press> {
        Some(match name {
            "join" => Press::Join,
            "code" => Press::Code,
            "delete" => Press::Delete,
            "ok" => Press::CodeOk,
            "accept" => Press::Accept,
            "decline" => Press::Decline,
            "cancel" | "leave" => Press::Cancel,
            "end" => Press::End,
            "end-yes" => Press::EndYes,
            "end-no" => Press::EndNo,
            "mute" => Press::Mute,
            "camera" => Press::Camera,
            "louder" => Press::VolumeUp,
            "quieter" => Press::VolumeDown,
            "hide-self" => Press::HideSelf,
            "language" => Press::Language,
            "larger-text" => Press::LargerText,
            "help" => Press::Help,
            "still-here" => Press::StillHere,
            d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() => {
                Press::Digit(d.as_bytes()[0] - b'0')
            }
            _ => return None,
        })
    }

    fn of(action: Action) -> Press {
        match action {
            Action::Join => Press::Join,
            Action::Code => Press::Code,
            Action::CodeOk => Press::CodeOk,
            Action::Delete => Press::Delete,
            Action::Accept => Press::Accept,
            Action::Decline => Press::Decline,
            Action::Cancel => Press::Cancel,
            Action::End => Press::End,
            Action::EndYes => Press::EndYes,
            Action::EndNo => Press::EndNo,
            Action::Mute => Press::Mute,
            Action::Camera => Press::Camera,
            Action::VolumeUp => Press::VolumeUp,
            Action::VolumeDown => Press::VolumeDown,
            Action::HideSelf => Press::HideSelf,
            Action::Language => Press::Language,
            Action::LargerText => Press::LargerText,
            Action::Help => Press::Help,
            Action::StillHere => Press::StillHere,
        }
    }

    fn action(self) -> Result<Action, u8> {
        Ok(match self {
            Press::Digit(d) => return Err(d),
            Press::Join => Action::Join,
            Press::Code => Action::Code,
            Press::CodeOk => Action::CodeOk,
            Press::Delete => Action::Delete,
            Press::Accept => Action::Accept,
            Press::Decline => Action::Decline,
            Press::Cancel => Action::Cancel,
            Press::End => Action::End,
            Press::EndYes => Action::EndYes,
            Press::EndNo => Action::EndNo,
            Press::Mute => Action::Mute,
            Press::Camera => Action::Camera,
            Press::VolumeUp => Action::VolumeUp,
            Press::VolumeDown => Action::VolumeDown,
            Press::HideSelf => Action::HideSelf,
            Press::Language => Action::Language,
            Press::LargerText => Action::LargerText,
            Press::Help => Action::Help,
            Press::StillHere => Action::StillHere,
        })
    }
}

/// Runs a button's action, as a tap on the button does (whichever page is up: the visit
/// ignores a press that does not fit where it is). Must run on the UI thread.
pub fn press(window: &KioskWindow, press: Press) {
    let api = window.global::<Api>();
    match press.action() {
        Ok(action) => api.invoke_act(action),
        Err(digit) => api.invoke_digit(digit.into()),
    }
}

/// Taps the control whose accessible label is `label` (as the screen shows it, in the language
/// on screen; case does not matter) through the real pointer path, at its centre. False if no
/// such control is up. Must run on the UI thread.
pub fn tap_label(window: &KioskWindow, label: &str) -> bool {
    use i_slint_backend_testing::{AccessibleRole, ElementHandle, ElementRoot};
    let wanted = label.to_lowercase();
    let shown: Vec<ElementHandle> = window
        .root_element()
        .query_descendants()
        .match_predicate(move |e| e.accessible_label().is_some_and(|l| l.to_lowercase() == wanted))
        .find_all()
        .into_iter()
        .filter(|e: &ElementHandle| {
            let size = e.size();
            size.width > 0.0 && size.height > 0.0 && e.computed_opacity() > 0.0
        })
        .collect();
    // A button before any text that reads the same (the keypad's "2", not the "2" already typed).
    let button = |e: &&ElementHandle| e.accessible_role() == Some(AccessibleRole::Button);
    let Some(element) = shown.iter().find(button).or(shown.first()) else { return false };
    let (at, size) = (element.absolute_position(), element.size());
    headless::tap(at.x + size.width / 2.0, at.y + size.height / 2.0);
    true
}

/// Connects each button of the window to `on_press`.
pub fn wire_buttons(window: &KioskWindow, on_press: impl Fn(Press) + Clone + 'static) {
    let api = window.global::<Api>();
    let f = on_press.clone();
    api.on_act(move |action| f(Press::of(action)));
    api.on_digit(move |d| {
        if let Ok(d @ 0..=9) = u8::try_from(d) {
            on_press(Press::Digit(d))
        }
    });
}
