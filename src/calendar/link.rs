//! Which room a meeting is held in, as far as the box can join it: the first link that matches
//! what the box knows how to join, looked for in RFC 7986 CONFERENCE (and Google's
//! X-GOOGLE-CONFERENCE), then LOCATION, then DESCRIPTION.
//!
//! What the box can join today is a room on its Janus server: a link on the server's host that
//! names a room (`?room=1234`, or a last path segment that is one of the configured rooms), or
//! a link that fits one of `[calendar] join_urls`, templates with a `{room}` placeholder
//! (`https://meet.example.com/r/{room}`). A later backend adds its own patterns here.

/// Longest room id taken from a link (as `room.room_id` allows).
const MAX_ROOM: usize = 128;

/// What the box can join.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinMatcher {
    /// The Janus server's host (lower case, without port), when a Janus backend is set.
    host: Option<String>,
    /// Templates' text before and after `{room}`.
    templates: Vec<(String, String)>,
    /// The rooms the configuration names.
    rooms: Vec<String>,
}

impl JoinMatcher {
    /// `janus_url` is `room.url` when the backend is Janus; `rooms` are `room.room_id` and
    /// `room.rooms`; `templates` are `calendar.join_urls`.
    pub fn new(janus_url: Option<&str>, rooms: &[String], templates: &[String]) -> JoinMatcher {
        JoinMatcher {
            host: janus_url.and_then(host_of),
            templates: templates
                .iter()
                .filter_map(|t| {
                    t.split_once("{room}")
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                })
                .collect(),
            rooms: rooms.iter().filter(|r| !r.is_empty()).cloned().collect(),
        }
    }

    /// The room a link names, if the box can join it.
    pub fn room_in(&self, url: &str) -> Option<String> {
        for (before, after) in &self.templates {
            if url.len() >= before.len() && url[..before.len()].eq_ignore_ascii_case(before) {
                let rest = &url[before.len()..];
                let room = match after.is_empty() {
                    true => rest.split(['/', '?', '#', '&']).next().unwrap_or(""),
                    false => rest.split(after.as_str()).next().unwrap_or(""),
                };
                if room_id_ok(room)
                    && (after.is_empty() || rest[room.len()..].starts_with(after.as_str()))
                {
                    return Some(room.to_string());
                }
            }
        }
        let host = self.host.as_deref()?;
        if host_of(url).as_deref() != Some(host) {
            return None;
        }
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q.split('#').next().unwrap_or(q))),
            None => (url.split('#').next().unwrap_or(url), None),
        };
        if let Some(q) = query {
            for pair in q.split('&') {
                if let Some(("room" | "roomId" | "room_id", v)) = pair.split_once('=') {
                    if room_id_ok(v) {
                        return Some(v.to_string());
                    }
                }
            }
        }
        let last = path
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_once('/'))
            .map(|(_, p)| p.trim_end_matches('/'))
            .and_then(|p| p.rsplit('/').next())?;
        self.rooms.iter().find(|r| *r == last).cloned()
    }

    /// The room of the first joinable link, in the order the places are trusted.
    pub fn pick(
        &self,
        conference: &[String],
        location: Option<&str>,
        description: Option<&str>,
    ) -> Option<String> {
        conference
            .iter()
            .find_map(|c| self.room_in(c.trim()))
            .or_else(|| location.and_then(|l| urls_in(l).find_map(|u| self.room_in(u))))
            .or_else(|| description.and_then(|d| urls_in(d).find_map(|u| self.room_in(u))))
    }
}

fn room_id_ok(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= MAX_ROOM
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `wss://Janus.Example.com:8989/x` → `janus.example.com`.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The URLs in free text (LOCATION, DESCRIPTION), in order.
pub fn urls_in(text: &str) -> impl Iterator<Item = &str> {
    let mut from = 0;
    std::iter::from_fn(move || loop {
        let rest = &text[from..];
        let at = ["https://", "http://", "wss://", "ws://"]
            .iter()
            .filter_map(|s| find_ci(rest, s))
            .min()?;
        let start = from + at;
        let len = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '|'))
            .unwrap_or(text.len() - start);
        from = start + len.max(1);
        let url = text[start..start + len].trim_end_matches(['.', ',', ';', ')', ']', ':', '!']);
        if url.contains("://") && url.len() > 8 {
            return Some(url);
        }
    })
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> JoinMatcher {
        JoinMatcher::new(
            Some("ws://janus.example.com:8188"),
            &["1234".into(), "boardroom".into()],
            &["https://meet.example.com/r/{room}".into()],
        )
    }

    #[test]
    fn conference_wins_over_location_and_description() {
        let m = matcher();
        let room = m.pick(
            &["https://meet.example.com/r/777".into()],
            Some("https://janus.example.com/videoroom?room=888"),
            Some("Join: https://janus.example.com/x?room=999"),
        );
        assert_eq!(room.as_deref(), Some("777"));
        let room = m.pick(
            &["https://zoom.us/j/1".into()],
            Some("Room 4, https://janus.example.com/videoroom?room=888."),
            Some("https://janus.example.com/x?room=999"),
        );
        assert_eq!(
            room.as_deref(),
            Some("888"),
            "a foreign CONFERENCE is passed over"
        );
        let room = m.pick(
            &[],
            Some("Room 4"),
            Some(
                "Agenda\nhttps://zoom.us/j/1\nJoin at <https://janus.example.com/rooms/boardroom>",
            ),
        );
        assert_eq!(room.as_deref(), Some("boardroom"));
    }

    #[test]
    fn links_the_box_cannot_join_give_no_room() {
        let m = matcher();
        assert_eq!(
            m.pick(&[], Some("https://teams.microsoft.com/l/meetup"), None),
            None
        );
        assert_eq!(m.room_in("https://janus.example.com/rooms/unknown"), None);
        assert_eq!(m.room_in("https://evil.example.com/?room=1234"), None);
        assert_eq!(m.room_in("https://meet.example.com/r/a b"), None);
        let none = JoinMatcher::new(None, &[], &[]);
        assert_eq!(none.room_in("https://janus.example.com/?room=1"), None);
    }

    #[test]
    fn urls_are_cut_from_text_without_trailing_punctuation() {
        let urls: Vec<&str> =
            urls_in("see (https://a.example/x). or HTTP://b.example/y, ok").collect();
        assert_eq!(urls, ["https://a.example/x", "HTTP://b.example/y"]);
    }
}
