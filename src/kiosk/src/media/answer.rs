//! Pure: the clinician's SDP answer reshaped into what webrtcbin 1.22 accepts, and what it says
//! about the call (which video codec to send, which m-lines the browser rejected).
//!
//! Browsers answer in shapes webrtcbin refuses as a whole although each is valid SDP:
//! - Firefox without an H.264 decoder rejects the video m-line (`m=video 0`) and leaves that
//!   section without `ice-ufrag`, `ice-pwd`, `setup` or fingerprint, and out of the BUNDLE group;
//!   webrtcbin refuses every media section lacking them ("media 0 is missing or contains an empty
//!   'ice-ufrag' attribute").
//! - Safari puts `ice-ufrag`, `ice-pwd` and the fingerprint at session level.
//!
//! So every section gets the transport attributes it lacks (from session level, else from the
//! first accepted section: with BUNDLE they are the same for all), its `mid` from the offer when
//! missing, and the BUNDLE group lists every section again. A rejected section becomes an
//! inactive one (port 9, `a=inactive`): webrtcbin 1.22 skips rejected sections entirely, and when
//! the rejected one is the first (the BUNDLE tag) it then never sets the transport's DTLS role
//! and the call fails in the DTLS handshake. Inactive, nothing flows on it either way, as the
//! browser expects. (The kiosk offers audio first, so that browsers reject a later section.)

/// The video codecs the kiosk offers, in the order it prefers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Vp8,
}

impl VideoCodec {
    /// From an `a=rtpmap` encoding name (`H264/90000` → `H264`).
    fn from_encoding(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "H264" => Some(Self::H264),
            "VP8" => Some(Self::Vp8),
            _ => None,
        }
    }
}

/// What the reshaped answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaped {
    /// The answer to give webrtcbin (CRLF line ends).
    pub sdp: String,
    /// The codec to send video with: the first of the answer's video formats the kiosk offers.
    /// `None` when the browser rejected video or chose nothing the kiosk can send.
    pub video: Option<VideoCodec>,
    /// The kinds (`video`, `audio`) of the m-lines the browser rejected, in order.
    pub rejected: Vec<String>,
}

/// Attributes every media section must carry for webrtcbin, in the order they are added.
const TRANSPORT: [&str; 4] = ["ice-ufrag", "ice-pwd", "fingerprint", "setup"];

/// One `m=` section: its `m=` line and the lines after it.
#[derive(Debug, Clone)]
struct Section {
    mline: String,
    lines: Vec<String>,
}

impl Section {
    fn kind(&self) -> &str {
        self.mline.trim_start_matches("m=").split(' ').next().unwrap_or("")
    }

    fn rejected(&self) -> bool {
        self.mline.split(' ').nth(1) == Some("0")
    }

    fn is_inactive(&self) -> bool {
        self.lines.iter().any(|l| l == "a=inactive")
    }

    /// Port 9 (the bundle's transport) and `a=inactive` instead of any other direction.
    fn make_inactive(&mut self) {
        let mut parts: Vec<&str> = self.mline.split(' ').collect();
        if parts.len() > 1 {
            parts[1] = "9";
        }
        self.mline = parts.join(" ");
        let directions = ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"];
        self.lines.retain(|l| !directions.contains(&l.as_str()));
        self.lines.push("a=inactive".into());
    }

    fn formats(&self) -> impl Iterator<Item = &str> {
        self.mline.split(' ').skip(3)
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        attribute(&self.lines, name)
    }

    /// The encoding name `a=rtpmap:<pt> <name>/<rate>` gives payload type `pt`.
    fn encoding(&self, pt: &str) -> Option<&str> {
        self.lines.iter().find_map(|line| {
            let rest = line.strip_prefix("a=rtpmap:")?;
            let (number, encoding) = rest.split_once(' ')?;
            (number == pt).then(|| encoding.split('/').next().unwrap_or(""))
        })
    }
}

fn attribute<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().find_map(|line| {
        let rest = line.strip_prefix("a=")?.strip_prefix(name)?;
        match rest.strip_prefix(':') {
            Some(value) if !value.trim().is_empty() => Some(value.trim()),
            _ => None,
        }
    })
}

/// Splits SDP text into session lines and media sections; blank lines are dropped.
fn split(sdp: &str) -> (Vec<String>, Vec<Section>) {
    let mut session = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    for line in sdp.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            sections.push(Section { mline: line.to_string(), lines: Vec::new() });
        } else if let Some(section) = sections.last_mut() {
            section.lines.push(line.to_string());
        } else {
            session.push(line.to_string());
        }
    }
    (session, sections)
}

/// Reshapes `answer` (to the kiosk's `offer`) so webrtcbin accepts it; see the module text.
/// Errors, in plain words, when it has no media section or the offer and answer disagree on
/// how many there are.
pub fn shape_answer(offer: &str, answer: &str) -> Result<Shaped, String> {
    let (offer_session, offered) = split(offer);
    let (mut session, mut sections) = split(answer);
    if sections.is_empty() {
        return Err("the answer has no media sections".into());
    }
    if sections.len() != offered.len() {
        return Err(format!(
            "the answer has {} media sections for the offer's {}",
            sections.len(),
            offered.len()
        ));
    }
    let accepted = sections.iter().find(|s| !s.rejected()).cloned();
    let rejected = sections.iter().filter(|s| s.rejected()).map(|s| s.kind().to_string()).collect();
    for (index, section) in sections.iter_mut().enumerate() {
        if section.rejected() {
            section.make_inactive();
        }
        for name in TRANSPORT {
            if section.attribute(name).is_some() {
                continue;
            }
            let value = attribute(&session, name)
                .or_else(|| accepted.as_ref().and_then(|a| a.attribute(name)))
                .map(str::to_string);
            if let Some(value) = value {
                section.lines.push(format!("a={name}:{value}"));
            }
        }
        if section.attribute("mid").is_none()
            && let Some(mid) = offered[index].attribute("mid")
        {
            section.lines.push(format!("a=mid:{mid}"));
        }
    }
    // Session-level copies are now in every section; webrtcbin reads the sections.
    session.retain(|l| !TRANSPORT.iter().any(|name| l.starts_with(&format!("a={name}:"))));
    rebundle(&mut session, &offer_session, &sections);

    let video = sections.iter().find(|s| s.kind() == "video" && !s.is_inactive()).and_then(|s| {
        s.formats().find_map(|pt| s.encoding(pt).and_then(VideoCodec::from_encoding))
    });
    let mut sdp = String::new();
    for line in session {
        sdp.push_str(&line);
        sdp.push_str("\r\n");
    }
    for section in sections {
        for line in std::iter::once(section.mline).chain(section.lines) {
            sdp.push_str(&line);
            sdp.push_str("\r\n");
        }
    }
    Ok(Shaped { sdp, video, rejected })
}

/// Lists every section's mid in the BUNDLE group, in section order, when the offer bundles: a
/// browser leaves a rejected section out of the group (and Firefox drops the group altogether
/// when it rejects the first section, the BUNDLE tag). webrtcbin would then look for a transport
/// per section, or move the call to one the offer never started, and ICE would never connect.
fn rebundle(session: &mut Vec<String>, offer_session: &[String], sections: &[Section]) {
    const GROUP: &str = "a=group:BUNDLE";
    if !offer_session.iter().any(|l| l.starts_with(GROUP)) {
        return;
    }
    let mids: Vec<&str> = sections.iter().filter_map(|s| s.attribute("mid")).collect();
    let group = format!("{GROUP} {}", mids.join(" "));
    match session.iter_mut().find(|l| l.starts_with(GROUP)) {
        Some(line) => *line = group,
        None => {
            let after_timing =
                session.iter().position(|l| l.starts_with("t=")).map_or(0, |i| i + 1);
            session.insert(after_timing, group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What webrtcbin offers (shortened to what matters here): H.264 and VP8 on one video
    /// m-line, Opus, BUNDLE.
    const OFFER: &str = "v=0\r\n\
        o=- 1 0 IN IP4 0.0.0.0\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE video0 audio1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
        a=ice-ufrag:kiosk\r\n\
        a=ice-pwd:kioskpassword\r\n\
        a=setup:actpass\r\n\
        a=mid:video0\r\n\
        a=rtpmap:96 H264/90000\r\n\
        a=rtpmap:97 VP8/90000\r\n\
        m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n\
        a=bundle-only\r\n\
        a=mid:audio1\r\n\
        a=rtpmap:111 OPUS/48000/2\r\n";

    const CHROMIUM: &str = "v=0\r\n\
        o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE video0 audio1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:Cr0m\r\n\
        a=ice-pwd:chromiumpasswordchromium\r\n\
        a=fingerprint:sha-256 AA:BB\r\n\
        a=setup:active\r\n\
        a=mid:video0\r\n\
        a=sendrecv\r\n\
        a=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:97 VP8/90000\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=ice-ufrag:Cr0m\r\n\
        a=ice-pwd:chromiumpasswordchromium\r\n\
        a=fingerprint:sha-256 AA:BB\r\n\
        a=setup:active\r\n\
        a=mid:audio1\r\n\
        a=sendrecv\r\n\
        a=rtpmap:111 opus/48000/2\r\n";

    /// Firefox ESR without OpenH264: VP8 chosen (its answer lists only what it can do).
    const FIREFOX_VP8: &str = "v=0\r\n\
        o=mozilla...THIS_IS_SDPARTA-153.8.0 1 0 IN IP4 0.0.0.0\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=fingerprint:sha-256 CC:DD\r\n\
        a=group:BUNDLE video0 audio1\r\n\
        a=ice-options:trickle\r\n\
        a=msid-semantic:WMS *\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 97\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=sendrecv\r\n\
        a=ice-pwd:firefoxpasswordfirefox\r\n\
        a=ice-ufrag:f1re\r\n\
        a=mid:video0\r\n\
        a=rtpmap:97 VP8/90000\r\n\
        a=setup:active\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=sendrecv\r\n\
        a=ice-pwd:firefoxpasswordfirefox\r\n\
        a=ice-ufrag:f1re\r\n\
        a=mid:audio1\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=setup:active\r\n";

    /// Firefox ESR answering an H.264-only video m-line: video rejected, that section bare, and
    /// no BUNDLE group at all (the rejected section was the BUNDLE tag).
    const FIREFOX_REJECTED: &str = "v=0\r\n\
        o=mozilla...THIS_IS_SDPARTA-153.8.0 1 0 IN IP4 0.0.0.0\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=sendrecv\r\n\
        a=fingerprint:sha-256 CC:DD\r\n\
        a=ice-options:trickle\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 120\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=inactive\r\n\
        a=rtpmap:120 VP8/90000\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=sendrecv\r\n\
        a=ice-pwd:firefoxpasswordfirefox\r\n\
        a=ice-ufrag:f1re\r\n\
        a=mid:audio1\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=setup:active\r\n";

    /// The kiosk's offer as it is made: audio first (the BUNDLE tag), then video.
    const OFFER_AUDIO_FIRST: &str = "v=0\r\n\
        o=- 1 0 IN IP4 0.0.0.0\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=group:BUNDLE audio0 video1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=mid:audio0\r\n\
        a=rtpmap:111 OPUS/48000/2\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 96 97\r\n\
        a=bundle-only\r\n\
        a=mid:video1\r\n\
        a=rtpmap:96 H264/90000\r\n\
        a=rtpmap:97 VP8/90000\r\n";

    /// Firefox rejecting the video of an audio-first offer: the group keeps the audio tag only.
    const FIREFOX_REJECTED_AUDIO_FIRST: &str = "v=0\r\n\
        o=mozilla...THIS_IS_SDPARTA-153.8.0 1 0 IN IP4 0.0.0.0\r\n\
        s=-\r\n\
        t=0 0\r\n\
        a=fingerprint:sha-256 CC:DD\r\n\
        a=group:BUNDLE audio0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=sendrecv\r\n\
        a=ice-pwd:firefoxpasswordfirefox\r\n\
        a=ice-ufrag:f1re\r\n\
        a=mid:audio0\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=setup:active\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 120\r\n\
        a=inactive\r\n\
        a=mid:video1\r\n\
        a=rtpmap:120 VP8/90000\r\n";

    /// Safari: ICE credentials and fingerprint at session level, LF line ends.
    const SAFARI: &str = "v=0\n\
        o=- 8 2 IN IP4 127.0.0.1\n\
        s=-\n\
        t=0 0\n\
        a=ice-ufrag:saf1\n\
        a=ice-pwd:safaripasswordsafari\n\
        a=fingerprint:sha-256 EE:FF\n\
        a=group:BUNDLE video0 audio1\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\n\
        c=IN IP4 0.0.0.0\n\
        a=setup:active\n\
        a=mid:video0\n\
        a=sendrecv\n\
        a=rtpmap:96 H264/90000\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\n\
        c=IN IP4 0.0.0.0\n\
        a=setup:active\n\
        a=mid:audio1\n\
        a=sendrecv\n\
        a=rtpmap:111 opus/48000/2\n";

    fn sections(sdp: &str) -> Vec<Section> {
        split(sdp).1
    }

    #[test]
    fn every_browser_shape_becomes_one_webrtcbin_accepts() {
        /// (name, answer, codec to send, rejected kinds, ufrag every section must carry)
        type Row =
            (&'static str, &'static str, Option<VideoCodec>, &'static [&'static str], &'static str);
        let table: [Row; 4] = [
            ("chromium", CHROMIUM, Some(VideoCodec::H264), &[], "Cr0m"),
            ("firefox vp8", FIREFOX_VP8, Some(VideoCodec::Vp8), &[], "f1re"),
            ("firefox rejected", FIREFOX_REJECTED, None, &["video"], "f1re"),
            ("safari", SAFARI, Some(VideoCodec::H264), &[], "saf1"),
        ];
        for (name, answer, video, rejected, ufrag) in table {
            let shaped = shape_answer(OFFER, answer).unwrap();
            assert_eq!(shaped.video, video, "{name}");
            assert_eq!(shaped.rejected, rejected, "{name}");
            let (session, media) = split(&shaped.sdp);
            assert_eq!(media.len(), 2, "{name}");
            for section in &media {
                assert_eq!(section.attribute("ice-ufrag"), Some(ufrag), "{name}");
                for attr in TRANSPORT {
                    assert!(section.attribute(attr).is_some(), "{name}: {attr} missing");
                }
                assert!(section.attribute("mid").is_some(), "{name}: mid missing");
            }
            assert_eq!(
                attribute(&session, "group"),
                Some("BUNDLE video0 audio1"),
                "{name}: BUNDLE group"
            );
            assert!(attribute(&session, "ice-ufrag").is_none(), "{name}: session ufrag left");
            assert!(shaped.sdp.lines().all(|l| !l.is_empty()) && shaped.sdp.ends_with("\r\n"));
        }
    }

    #[test]
    fn video_rejected_after_the_audio_tag_keeps_the_audio_transport() {
        let shaped = shape_answer(OFFER_AUDIO_FIRST, FIREFOX_REJECTED_AUDIO_FIRST).unwrap();
        assert_eq!((shaped.video, shaped.rejected.as_slice()), (None, &["video".to_string()][..]));
        let (session, media) = split(&shaped.sdp);
        assert_eq!(attribute(&session, "group"), Some("BUNDLE audio0 video1"));
        assert!(media[1].is_inactive() && media[1].attribute("ice-ufrag") == Some("f1re"));
        assert_eq!(media[0].attribute("fingerprint"), Some("sha-256 CC:DD"));
    }

    #[test]
    fn a_rejected_section_becomes_inactive_with_the_offers_mid() {
        let shaped = shape_answer(OFFER, FIREFOX_REJECTED).unwrap();
        let video = &sections(&shaped.sdp)[0];
        assert_eq!(video.mline, "m=video 9 UDP/TLS/RTP/SAVPF 120");
        assert!(video.is_inactive() && !video.rejected());
        assert_eq!(video.lines.iter().filter(|l| l.starts_with("a=inactive")).count(), 1);
        assert_eq!(video.attribute("mid"), Some("video0"));
        assert_eq!(video.attribute("fingerprint"), Some("sha-256 CC:DD"));
        assert_eq!(video.attribute("setup"), Some("active"));
    }

    #[test]
    fn the_answers_first_offered_video_format_is_the_codec_to_send() {
        let vp8_first = CHROMIUM
            .replace("m=video 9 UDP/TLS/RTP/SAVPF 96 97", "m=video 9 UDP/TLS/RTP/SAVPF 97 96");
        assert_eq!(shape_answer(OFFER, &vp8_first).unwrap().video, Some(VideoCodec::Vp8));
        let unknown = CHROMIUM
            .replace("m=video 9 UDP/TLS/RTP/SAVPF 96 97", "m=video 9 UDP/TLS/RTP/SAVPF 98")
            .replace("a=rtpmap:96 H264/90000", "a=rtpmap:98 AV1/90000");
        assert_eq!(shape_answer(OFFER, &unknown).unwrap().video, None);
    }

    #[test]
    fn a_group_the_browser_left_out_names_every_section_again() {
        let without_video = FIREFOX_VP8.replace("BUNDLE video0 audio1", "BUNDLE audio1");
        let shaped = shape_answer(OFFER, &without_video).unwrap();
        assert_eq!(attribute(&split(&shaped.sdp).0, "group"), Some("BUNDLE video0 audio1"));
        // Nothing to put back when the offer did not bundle.
        let unbundled = OFFER.replace("a=group:BUNDLE video0 audio1\r\n", "");
        let shaped = shape_answer(&unbundled, FIREFOX_REJECTED).unwrap();
        assert_eq!(attribute(&split(&shaped.sdp).0, "group"), None);
    }

    #[test]
    fn present_attributes_are_kept_as_they_are() {
        let shaped = shape_answer(OFFER, CHROMIUM).unwrap();
        let expected: String =
            CHROMIUM.lines().map(|l| format!("{l}\r\n")).collect::<Vec<_>>().concat();
        assert_eq!(shaped.sdp, expected);
    }

    #[test]
    fn answers_that_do_not_fit_the_offer_are_refused_in_words() {
        let table = [
            ("v=0\r\ns=-\r\n", "no media sections"),
            ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "1 media sections for the offer's 2"),
        ];
        for (answer, words) in table {
            let err = shape_answer(OFFER, answer).unwrap_err();
            assert!(err.contains(words), "{err}");
        }
    }
}
