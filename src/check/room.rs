//! The `[room]` checker: which server the box joins, and, for WHIP and WHEP, that the token
//! files the agent reads at each join are there and hold a token. It sends nothing: a POST to a
//! WHIP endpoint would publish.

use super::{CheckLine, Status};
use crate::config::{RoomBackendKind, RoomConfig};
use crate::room::whip::read_token;

/// One line for the room, and one per WHEP source.
pub fn room(c: &RoomConfig) -> Vec<CheckLine> {
    match c.backend {
        RoomBackendKind::None => vec![CheckLine::new(
            Status::Ok,
            "room",
            "off (room.backend = \"none\")",
        )],
        RoomBackendKind::Janus => vec![CheckLine::new(
            Status::Ok,
            "room",
            format!("Janus VideoRoom at {}, room {}", c.url, c.room_id),
        )],
        RoomBackendKind::Whip => {
            let mut out = Vec::new();
            if c.url.is_empty() {
                out.push(CheckLine::new(
                    Status::Ok,
                    "room",
                    "WHEP only: the box publishes nothing (room.url is empty)",
                ));
            } else {
                out.push(token_line(
                    "room",
                    format!("publishes over WHIP to {}", c.url),
                    &c.token_file,
                    "room.token_file",
                ));
            }
            for w in &c.whep {
                let (file, field) = if w.token_file.as_os_str().is_empty() {
                    (&c.token_file, "room.token_file")
                } else {
                    (&w.token_file, "its token_file")
                };
                out.push(token_line(
                    "room-whep",
                    format!("watches whep-{} over WHEP at {}", w.name, w.url),
                    file,
                    field,
                ));
            }
            out
        }
    }
}

fn token_line(check: &str, what: String, file: &std::path::Path, field: &str) -> CheckLine {
    match read_token(file, field) {
        Ok(Some(_)) => CheckLine::new(
            Status::Ok,
            check,
            format!("{what}, with the token in {}", file.display()),
        ),
        Ok(None) => CheckLine::new(Status::Ok, check, format!("{what}, with no token")),
        Err(e) => CheckLine::new(Status::Failed, check, format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WhepSource;

    #[test]
    fn an_unreadable_token_fails_and_never_shows_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("token");
        std::fs::write(&good, "s3cret-token\n").unwrap();
        let c = RoomConfig {
            backend: RoomBackendKind::Whip,
            url: "http://127.0.0.1:1/whip/box".into(),
            token_file: good.clone(),
            whep: vec![WhepSource {
                name: "hall".into(),
                url: "http://127.0.0.1:1/whep/hall".into(),
                token_file: dir.path().join("missing"),
            }],
            ..RoomConfig::default()
        };
        let lines = room(&c);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].status, Status::Ok);
        assert_eq!(lines[1].status, Status::Failed);
        assert!(lines[1].detail.contains("missing"), "{}", lines[1].detail);
        assert!(lines.iter().all(|l| !l.detail.contains("s3cret")));
    }
}
