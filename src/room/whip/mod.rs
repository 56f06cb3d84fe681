//! The WHIP and WHEP backend: the box publishes to a WHIP endpoint (RFC 9725) and watches WHEP
//! sources (draft-ietf-wish-whep), each a session created by one HTTP POST of an SDP offer
//! ([`resource`]). LiveKit's ingress, Cloudflare, Dolby, OBS, VideoSDK and Janus (through
//! Meetecho's `simple-whip-server`) take WHIP.
//!
//! Like gst-plugins-rs's `whipclientsink`, the box does not trickle: its offers carry every
//! candidate (see [`super::peer`]), so no PATCH is needed to start. An ICE failure is met the
//! way a Janus room meets it: the session drops the connection and joins again with backoff,
//! which here is a new POST (a full offer) after the old resource's DELETE.
//!
//! There is no room server behind the protocol: "joining" reads the token and names the
//! WHEP sources as the room's participants; they have no roster, so the session lists each one
//! while its subscription stands ([`Joined::roster`] false). Chat, ending the room for
//! everyone, cloud recording and renegotiating a running publication do not exist here: the
//! session then only stops sending video with the camera off, as it does for any backend that
//! cannot renegotiate.
//!
//! Imported by `room::spawn`, which picks the backend.

pub mod resource;

use super::signaller::{
    IceServer, Joined, Offerer, PublishKinds, RemotePublisher, RoomError, SignalEvent, Signaller,
    Subscription,
};
use super::JoinRequest;
use crate::config::RoomConfig;
use reqwest::Url;
use resource::Endpoint;
use std::collections::HashMap;
use std::path::Path;

/// The prefix of a WHEP source's participant id.
pub const WHEP_PREFIX: &str = "whep-";

/// A WHIP and WHEP backend.
pub struct Whip {
    config: RoomConfig,
    http: Option<reqwest::Client>,
    /// The publication, once created.
    published: Option<resource::Resource>,
    /// The token read at join.
    token: Option<String>,
    /// Subscription id → its WHEP resource and token.
    watching: HashMap<String, (Url, Option<String>)>,
    /// ICE servers the endpoints named, for the next connections.
    ice: Vec<IceServer>,
}

impl Whip {
    /// A backend for `config`; nothing is contacted before a join.
    pub fn new(config: RoomConfig) -> Whip {
        Whip {
            config,
            http: None,
            published: None,
            token: None,
            watching: HashMap::new(),
            ice: Vec::new(),
        }
    }

    fn http(&mut self) -> Result<reqwest::Client, RoomError> {
        if let Some(h) = &self.http {
            return Ok(h.clone());
        }
        let h = resource::client(self.config.connect_timeout)?;
        self.http = Some(h.clone());
        Ok(h)
    }

    /// DELETEs every session this backend created; a failure is only logged (the server
    /// times sessions out when their media stops).
    async fn delete_all(&mut self) {
        let Ok(http) = self.http() else {
            return;
        };
        if let Some(p) = self.published.take() {
            if let Err(e) = resource::delete(&http, &p.url, self.token.as_deref(), "WHIP").await {
                tracing::warn!(error = %e, "whip: leaving");
            }
        }
        for (_, (url, token)) in self.watching.drain() {
            if let Err(e) = resource::delete(&http, &url, token.as_deref(), "WHEP").await {
                tracing::debug!(error = %e, "whep: leaving");
            }
        }
    }
}

/// The first line of a token file, trimmed; `None` for no file.
pub fn read_token(path: &Path, field: &str) -> Result<Option<String>, RoomError> {
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        RoomError::Refused(format!("{field} {}: cannot read it: {e}", path.display()))
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(RoomError::Refused(format!(
            "{field} {}: its first line is not a bearer token",
            path.display()
        )));
    }
    Ok(Some(token))
}

fn parse_url(s: &str, field: &str) -> Result<Url, RoomError> {
    Url::parse(s).map_err(|e| RoomError::Refused(format!("{field} `{s}`: {e}")))
}

#[async_trait::async_trait]
impl Signaller for Whip {
    fn name(&self) -> &'static str {
        "whip"
    }

    async fn join(&mut self, req: &JoinRequest) -> Result<Joined, RoomError> {
        if req.room_id != self.config.room_id {
            return Err(RoomError::Refused(format!(
                "the WHIP backend has one room, `{}`; `{}` is not it",
                self.config.room_id, req.room_id
            )));
        }
        self.delete_all().await;
        self.token = read_token(&self.config.token_file, "room.token_file")?;
        let publishers = self
            .config
            .whep
            .iter()
            .map(|w| RemotePublisher {
                participant_id: format!("{WHEP_PREFIX}{}", w.name),
                display_name: w.name.clone(),
                audio: true,
                video: true,
                data: false,
                share: false,
            })
            .collect();
        Ok(Joined {
            room_id: req.room_id.clone(),
            session_id: None,
            participant_id: format!("whip-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            publishers,
            roster: false,
        })
    }

    async fn publish(&mut self, offer: &str, _kinds: PublishKinds) -> Result<String, RoomError> {
        if self.config.url.is_empty() {
            return Err(RoomError::Refused(
                "room.url is empty: there is no WHIP endpoint to publish to".into(),
            ));
        }
        let ep = Endpoint {
            url: parse_url(&self.config.url, "room.url")?,
            token: self.token.clone(),
        };
        let http = self.http()?;
        let created = resource::create(&http, &ep, offer, "WHIP").await?;
        tracing::info!(resource = %created.url, ice_servers = created.ice_servers.len(), "whip: published");
        if !created.ice_servers.is_empty() {
            self.ice = created.ice_servers.clone();
        }
        let answer = created.answer.clone();
        self.published = Some(created);
        Ok(answer)
    }

    async fn unpublish(&mut self) -> Result<(), RoomError> {
        let http = self.http()?;
        if let Some(p) = self.published.take() {
            resource::delete(&http, &p.url, self.token.as_deref(), "WHIP").await?;
        }
        Ok(())
    }

    async fn subscribe(&mut self, _participant_id: &str) -> Result<Subscription, RoomError> {
        Err(RoomError::Unsupported(
            "server offers (WHEP subscriptions are offered by the box)".into(),
        ))
    }

    fn subscription_offerer(&self) -> Offerer {
        Offerer::Local
    }

    async fn subscribe_with_offer(
        &mut self,
        subscription_id: &str,
        participant_id: &str,
        offer: &str,
    ) -> Result<String, RoomError> {
        let Some(src) = participant_id
            .strip_prefix(WHEP_PREFIX)
            .and_then(|n| self.config.whep.iter().find(|w| w.name == n))
            .cloned()
        else {
            return Err(RoomError::Refused(format!(
                "no WHEP source for participant {participant_id}"
            )));
        };
        let token = if src.token_file.as_os_str().is_empty() {
            self.token.clone()
        } else {
            read_token(&src.token_file, "room.whep.token_file")?
        };
        let ep = Endpoint {
            url: parse_url(&src.url, "room.whep.url")?,
            token: token.clone(),
        };
        let http = self.http()?;
        let created = resource::create(&http, &ep, offer, "WHEP").await?;
        tracing::info!(source = %src.name, resource = %created.url, "whep: watching");
        self.watching
            .insert(subscription_id.to_string(), (created.url, token));
        Ok(created.answer)
    }

    async fn accept(&mut self, _subscription_id: &str, _answer: &str) -> Result<(), RoomError> {
        Err(RoomError::Unsupported("answers to server offers".into()))
    }

    async fn unsubscribe(&mut self, subscription_id: &str) -> Result<(), RoomError> {
        let Some((url, token)) = self.watching.remove(subscription_id) else {
            return Ok(());
        };
        let http = self.http()?;
        resource::delete(&http, &url, token.as_deref(), "WHEP").await
    }

    async fn leave(&mut self) -> Result<(), RoomError> {
        self.delete_all().await;
        Ok(())
    }

    async fn end_for_all(&mut self) -> Result<(), RoomError> {
        Err(RoomError::Unsupported(
            "ending a WHIP session for everyone".into(),
        ))
    }

    async fn set_recording(&mut self, _on: bool) -> Result<(), RoomError> {
        Err(RoomError::Unsupported("cloud recording".into()))
    }

    async fn next_event(&mut self) -> Option<SignalEvent> {
        // No signalling channel: nothing ever arrives. Pending, not `None`, so the session's
        // `select!` does not spin on it.
        std::future::pending().await
    }

    fn ice_servers(&self) -> Vec<IceServer> {
        self.ice.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_gives_its_first_line_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("t");
        std::fs::write(&good, "abc.def-123\nignored\n").unwrap();
        assert_eq!(
            read_token(&good, "room.token_file").unwrap().as_deref(),
            Some("abc.def-123")
        );
        assert_eq!(read_token(Path::new(""), "f").unwrap(), None);
        let missing = read_token(&dir.path().join("nope"), "room.token_file").unwrap_err();
        assert!(matches!(&missing, RoomError::Refused(m) if m.contains("cannot read")));
        for bad in ["\n", "two words\n", "  \n"] {
            std::fs::write(&good, bad).unwrap();
            let e = read_token(&good, "room.token_file").unwrap_err();
            assert!(
                matches!(&e, RoomError::Refused(m) if m.contains("not a bearer token") && !m.contains("two")),
                "{bad:?}: {e}"
            );
        }
    }
}
