//! Which GStreamer elements could write visit media anywhere — a file, the network, another
//! process, the log — and so may never appear in a hardware profile. Checked when a profile is
//! loaded ([`crate::profile::Profile::load`]) and again when a call builds its pipeline.
//!
//! The rule ([`refusal`]) is pure and judges what GStreamer says about each element: its
//! factory's klass (`Sink/File`, `Sink/Network`, `Generic/Sink`, …), whether it takes a URI to
//! write to, `dump=true`, and file-name properties set away from their defaults. Descriptions
//! are parsed into real elements ([`check_description`]); only names GStreamer does not know are
//! judged by name alone.

use gst::prelude::*;

/// What a profile key's description is for: only the speaker may end in a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A camera or microphone (`video.source`, `audio.source`): no sink of any kind.
    Capture,
    /// The speaker (`audio.sink`): one of [`SPEAKER_SINKS`], nothing else that sinks.
    Speaker,
    /// An entry of `video.encoders`: an element factory name.
    Encoder,
}

impl Role {
    /// The role of a profile key.
    pub fn of_key(key: &str) -> Self {
        match key {
            "audio.sink" => Role::Speaker,
            "video.encoders" => Role::Encoder,
            _ => Role::Capture,
        }
    }
}

/// The sinks a speaker may use: they play sound and keep nothing.
pub const SPEAKER_SINKS: &[&str] =
    &["alsasink", "pulsesink", "pipewiresink", "autoaudiosink", "fakesink", "fakeaudiosink"];

/// Writers whose name does not end in `sink` and whose klass does not say `Sink` everywhere.
const NAMED_WRITERS: &[&str] = &["shout2send", "splitmuxsink", "hlssink2", "webrtcsink"];

/// What the rule needs to know about one element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Factory name, e.g. `filesink`.
    pub factory: String,
    /// The factory's klass, e.g. `Sink/File`; empty when the element is not installed.
    pub klass: String,
    /// It takes a URI to write to (a `GstURIHandler` of the sink kind).
    pub uri_sink: bool,
    /// `dump=true`: every buffer is hex-dumped to stdout (and so to the journal).
    pub dump: bool,
    /// File-name properties (`location`, `*-file`, …) set away from their defaults.
    pub file_properties: Vec<String>,
}

impl Facts {
    /// Facts of a factory name alone (no properties): its klass when installed.
    pub fn of_factory(name: &str) -> Self {
        let klass = gst::init()
            .ok()
            .and_then(|()| gst::ElementFactory::find(name))
            .and_then(|f| f.metadata("klass").map(str::to_string))
            .unwrap_or_default();
        Facts { factory: name.to_string(), klass, ..Facts::default() }
    }

    /// Facts of a parsed element, its properties included.
    pub fn of_element(element: &gst::Element) -> Self {
        let factory = element.factory();
        let klass = factory
            .as_ref()
            .and_then(|f| f.metadata("klass").map(str::to_string))
            .unwrap_or_default();
        let dump =
            element.find_property("dump").is_some_and(|p| p.value_type() == bool::static_type())
                && element.property::<bool>("dump");
        let file_properties = element
            .list_properties()
            .iter()
            // `ParamSpec::value_type`, not `ToValue::value_type` of the reference.
            .filter(|&p| is_file_property(p.name()) && p.value_type() == String::static_type())
            .filter(|p| {
                let flags = p.flags();
                flags.contains(gst::glib::ParamFlags::READABLE)
                    && flags.contains(gst::glib::ParamFlags::WRITABLE)
            })
            .filter(|p| {
                let now = element.property_value(p.name()).get::<Option<String>>().ok().flatten();
                let default = p.default_value().get::<Option<String>>().ok().flatten();
                now.as_ref().is_some_and(|v| !v.is_empty()) && now != default
            })
            .map(|p| p.name().to_string())
            .collect();
        Facts {
            factory: factory.map(|f| f.name().to_string()).unwrap_or_default(),
            klass,
            uri_sink: element
                .dynamic_cast_ref::<gst::URIHandler>()
                .is_some_and(|h| h.uri_type() == gst::URIType::Sink),
            dump,
            file_properties,
        }
    }
}

/// A property that names a file: `location`, `*-location`, `*-file`, `*-filename`.
fn is_file_property(name: &str) -> bool {
    name == "location"
        || name.ends_with("-location")
        || name.ends_with("-file")
        || name.ends_with("filename")
}

fn klass_has(klass: &str, part: &str) -> bool {
    klass.split('/').any(|k| k == part)
}

/// Why an element may not be in a profile key of `role`, or `None` when it may.
pub fn refusal(role: Role, e: &Facts) -> Option<String> {
    if e.dump {
        return Some("dumps every buffer it passes (dump=true)".into());
    }
    let sink = klass_has(&e.klass, "Sink")
        || e.factory.ends_with("sink")
        || e.uri_sink
        || NAMED_WRITERS.contains(&e.factory.as_str());
    if sink {
        let speaker = role == Role::Speaker && SPEAKER_SINKS.contains(&e.factory.as_str());
        if !speaker {
            let what = if e.klass.is_empty() { "a sink".to_string() } else { e.klass.clone() };
            return Some(match role {
                Role::Speaker => format!(
                    "is a sink ({what}) other than a speaker ({}): it could send the visit's \
                     audio to a file, the network or another process",
                    SPEAKER_SINKS.join(", ")
                ),
                _ => format!(
                    "is a sink ({what}): a camera, microphone or encoder must not send media \
                     anywhere but the call"
                ),
            });
        }
    }
    if !klass_has(&e.klass, "Source") && !e.file_properties.is_empty() {
        return Some(format!("writes a file ({} set)", e.file_properties.join(", ")));
    }
    if role == Role::Encoder && !e.klass.is_empty() && !klass_has(&e.klass, "Encoder") {
        return Some(format!("is not an encoder ({})", e.klass));
    }
    None
}

/// Checks a profile key's launch description: parsed into real elements, each judged by
/// [`refusal`]. A description naming elements not installed here is judged by its words instead
/// (the media layer names the missing element when a call starts). The error names the key and
/// the element.
pub fn check_description(key: &str, description: &str) -> Result<(), String> {
    let role = Role::of_key(key);
    let parsed = gst::init().map_err(|e| e.to_string()).and_then(|()| {
        gst::parse::bin_from_description(description, true).map_err(|e| e.to_string())
    });
    match parsed {
        Ok(bin) => check_bin(key, &bin),
        Err(_) => {
            let gst_ok = gst::init().is_ok();
            for word in element_words(description) {
                let made = if gst_ok { gst::ElementFactory::make(word).build().ok() } else { None };
                let facts = match made {
                    Some(element) => Facts {
                        dump: element.find_property("dump").is_some()
                            && description_dumps(description),
                        ..Facts::of_element(&element)
                    },
                    None => Facts { factory: word.to_string(), ..Facts::default() },
                };
                if let Some(why) = refusal(role, &facts) {
                    return Err(refused(key, word, &why));
                }
            }
            Ok(())
        }
    }
}

/// Checks every element of a parsed bin (recursively) for a profile key.
pub fn check_bin(key: &str, bin: &gst::Bin) -> Result<(), String> {
    let role = Role::of_key(key);
    for element in bin.iterate_recurse().into_iter().flatten() {
        let facts = Facts::of_element(&element);
        if let Some(why) = refusal(role, &facts) {
            return Err(refused(key, &facts.factory, &why));
        }
    }
    Ok(())
}

/// Checks one `video.encoders` entry (a factory name).
pub fn check_encoder(name: &str) -> Result<(), String> {
    match refusal(Role::Encoder, &Facts::of_factory(name)) {
        Some(why) => Err(refused("video.encoders", name, &why)),
        None => Ok(()),
    }
}

fn refused(key: &str, element: &str, why: &str) -> String {
    format!("{key}: element {element} {why}; visit media may never leave the kiosk's memory")
}

/// Words of a launch description that may be element names: the first word of each `!`
/// segment and every bare word (not `prop=value`, not a `name.` pad reference).
fn element_words(description: &str) -> Vec<&str> {
    description
        .split(|c: char| c == '!' || c.is_whitespace())
        .filter(|w| !w.is_empty() && !w.contains('=') && !w.contains('.') && !w.contains(','))
        .filter(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .collect()
}

/// `dump=true` (or 1/yes) anywhere in a description that could not be parsed.
fn description_dumps(description: &str) -> bool {
    description.split_whitespace().any(|w| {
        w.strip_prefix("dump=").is_some_and(|v| {
            matches!(v.trim_matches('"').to_ascii_lowercase().as_str(), "true" | "1" | "yes")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(factory: &str, klass: &str) -> Facts {
        Facts { factory: factory.into(), klass: klass.into(), ..Facts::default() }
    }

    /// The pure rule, on facts as GStreamer reports them.
    #[test]
    fn rule_table() {
        use Role::*;
        let dump = Facts { dump: true, ..facts("fakesink", "Sink") };
        let located = Facts {
            file_properties: vec!["multipass-cache-file".into()],
            ..facts("x", "Codec/Encoder/Video")
        };
        let uri = Facts { uri_sink: true, ..facts("oddwriter", "Generic") };
        let reading =
            Facts { file_properties: vec!["location".into()], ..facts("filesrc", "Source/File") };
        let cases: &[(Role, Facts, bool)] = &[
            (Speaker, facts("filesink", "Sink/File"), false),
            (Speaker, facts("udpsink", "Sink/Network"), false),
            (Speaker, facts("appsink", "Generic/Sink"), false),
            (Speaker, facts("splitmuxsink", "Generic/Bin/Muxer"), false),
            (Speaker, facts("shout2send", ""), false),
            (Speaker, facts("somethingfilesink", ""), false),
            (Speaker, dump.clone(), false),
            (Capture, Facts { dump: true, ..facts("identity", "Generic") }, false),
            (Capture, facts("fakesink", "Sink"), false),
            (Capture, located.clone(), false),
            (Capture, uri.clone(), false),
            (Encoder, facts("filesink", "Sink/File"), false),
            (Encoder, facts("videotestsrc", "Source/Video"), false),
            (Speaker, facts("pulsesink", "Sink/Audio"), true),
            (Speaker, facts("alsasink", "Sink/Audio"), true),
            (Speaker, facts("autoaudiosink", "Sink/Audio"), true),
            (Speaker, facts("pipewiresink", ""), true),
            (Speaker, facts("fakesink", "Sink"), true),
            (Capture, facts("identity", "Generic"), true),
            (Capture, facts("v4l2src", "Source/Video"), true),
            (Capture, reading, true),
            (Encoder, facts("x264enc", "Codec/Encoder/Video"), true),
            (Encoder, facts("vah264enc", ""), true), // not installed here: judged by name
        ];
        for (role, facts, allowed) in cases {
            let verdict = refusal(*role, facts);
            assert_eq!(verdict.is_none(), *allowed, "{role:?} {facts:?}: {verdict:?}");
        }
    }

    /// Real elements, parsed by GStreamer: every one that can write media is refused, naming
    /// the key and the element.
    #[test]
    fn every_media_writer_is_refused_naming_key_and_element() {
        let cases: &[(&str, &str, &str)] = &[
            ("audio.sink", "filesink location=/tmp/x.raw", "filesink"),
            ("audio.sink", "multifilesink location=/tmp/x-%05d.raw", "multifilesink"),
            ("audio.sink", "splitmuxsink location=/tmp/x-%05d.mp4", "splitmuxsink"),
            ("audio.sink", "giosink location=file:///tmp/x.raw", "giosink"),
            ("audio.sink", "fdsink fd=1", "fdsink"),
            ("audio.sink", "curlfilesink location=file:///tmp/x", "curlfilesink"),
            ("audio.sink", "hlssink", "hlssink"),
            ("audio.sink", "hlssink2", "hlssink2"),
            ("audio.sink", "fakesink dump=true", "fakesink"),
            ("audio.sink", "fakeaudiosink dump=true", "fakeaudiosink"),
            ("audio.sink", "identity dump=true ! pulsesink", "identity"),
            ("audio.sink", "appsink", "appsink"),
            ("audio.sink", "tcpserversink port=5000", "tcpserversink"),
            ("audio.sink", "tcpclientsink", "tcpclientsink"),
            ("audio.sink", "udpsink host=10.0.0.1 port=5000", "udpsink"),
            ("audio.sink", "multiudpsink", "multiudpsink"),
            ("audio.sink", "shout2send", "shout2send"),
            ("audio.sink", "rtmpsink", "rtmpsink"),
            ("audio.sink", "rtmp2sink", "rtmp2sink"),
            ("audio.sink", "srtsink uri=srt://10.0.0.1:7001", "srtsink"),
            ("audio.sink", "shmsink socket-path=/tmp/x", "shmsink"),
            ("audio.sink", "tee name=t ! queue ! pulsesink t. ! queue ! filesink", "filesink"),
            ("audio.source", "pulsesrc ! tee name=t ! queue ! fakesink t. ! queue", "fakesink"),
            (
                "video.source",
                "videotestsrc ! tee name=t ! queue ! x264enc ! mp4mux ! filesink location=/tmp/v.mp4 t. ! queue",
                "filesink",
            ),
            (
                "video.source",
                "videotestsrc ! x264enc pass=pass1 multipass-cache-file=/tmp/s",
                "x264enc",
            ),
            ("video.source", "videotestsrc ! fakevideosink", "fakevideosink"),
            // Not installed here: judged by the words of the description.
            ("video.source", "no-such-camera-src ! filesink location=/tmp/x", "filesink"),
            ("audio.sink", "no-such-filter ! fakesink dump=true", "fakesink"),
        ];
        for (key, description, element) in cases {
            let err = check_description(key, description)
                .expect_err(&format!("{key} = {description:?} was accepted"));
            assert!(
                err.starts_with(&format!("{key}: element {element} ")),
                "{key} = {description:?}: {err}"
            );
        }
    }

    #[test]
    fn speakers_cameras_and_microphones_are_accepted() {
        let cases: &[(&str, &str)] = &[
            ("audio.sink", "fakesink sync=false"),
            ("audio.sink", "pulsesink"),
            ("audio.sink", "alsasink device=hw:0"),
            ("audio.sink", "audioconvert ! autoaudiosink"),
            ("audio.source", "audiotestsrc is-live=true wave=sine freq=440 volume=0.3"),
            ("audio.source", "pulsesrc"),
            ("video.source", "videotestsrc is-live=true pattern=smpte"),
            ("video.source", "v4l2src device=/dev/video0"),
            ("video.source", "videotestsrc is-live=true ! identity name=camera error-after=5"),
            ("video.source", "filesrc location=/usr/share/demo.y4m ! decodebin"),
            // Not installed here and no writer named: the media layer reports it at call start.
            ("video.source", "no-such-camera-src device=/dev/video9"),
        ];
        for (key, description) in cases {
            check_description(key, description).unwrap_or_else(|e| panic!("{description}: {e}"));
        }
    }

    #[test]
    fn encoders_must_be_encoders() {
        check_encoder("x264enc").unwrap();
        check_encoder("vah264enc-not-installed-here").unwrap();
        let err = check_encoder("filesink").unwrap_err();
        assert!(err.starts_with("video.encoders: element filesink "), "{err}");
        let err = check_encoder("identity").unwrap_err();
        assert!(err.contains("not an encoder"), "{err}");
    }

    #[test]
    fn words_of_a_description() {
        assert_eq!(
            element_words("a ! b x=1 ! tee name=t t. ! queue ! c caps=\"x,y\""),
            ["a", "b", "tee", "queue", "c"]
        );
        assert!(description_dumps("x ! fakesink dump=1"));
        assert!(!description_dumps("x ! fakesink dump=false"));
    }
}
