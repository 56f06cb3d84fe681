//! A CalDAV calendar collection (RFC 4791). Each poll first asks the collection's `getctag`
//! (and `sync-token`, RFC 6578) with a one-property PROPFIND; only when it changed (or the day
//! did) does a `calendar-query` REPORT with a time-range fetch the window's objects. Book-now
//! PUTs a new object with `If-None-Match: *`; a release rewrites the room's answer with
//! `If-Match` on the ETag just read (or deletes the box's own booking).

use super::edit;
use super::{
    body, client, redact, status_error, unreachable, Booking, Credentials, Fetched, Resource,
    SourceError,
};
use crate::calendar::expand::Meeting;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use std::time::Duration;

const DAV: &str = "DAV:";
const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
const CS: &str = "http://calendarserver.org/ns/";

pub struct CalDav {
    /// The collection's URL, ending in `/`.
    url: reqwest::Url,
    creds: Option<Credentials>,
    http: reqwest::Client,
    /// The collection's version (ctag or sync-token) at the last good read, and its window.
    version: Option<(String, DateTime<Utc>)>,
    /// Where the last read's objects live.
    resources: Vec<Resource>,
}

impl CalDav {
    pub fn new(
        url: &str,
        creds: Option<Credentials>,
        timeout: Duration,
    ) -> Result<CalDav, SourceError> {
        let with_slash = if url.ends_with('/') {
            url.to_string()
        } else {
            format!("{url}/")
        };
        let parsed = reqwest::Url::parse(&with_slash).map_err(|e| SourceError::BadAnswer {
            url: url.to_string(),
            reason: format!("not a URL: {e}"),
        })?;
        Ok(CalDav {
            url: parsed,
            creds,
            http: client(timeout, url)?,
            version: None,
            resources: Vec::new(),
        })
    }

    fn request(&self, method: Method, url: &reqwest::Url) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url.clone());
        match &self.creds {
            Some(c) => req.basic_auth(&c.username, Some(c.password.expose())),
            None => req,
        }
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &reqwest::Url,
    ) -> Result<reqwest::Response, SourceError> {
        let resp = req
            .send()
            .await
            .map_err(|e| unreachable(url.as_str(), &e))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(status_error(url.as_str(), resp.status()))
        }
    }

    /// The collection's ctag, else its sync-token; none when it offers neither.
    async fn version(&self) -> Result<Option<String>, SourceError> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="{DAV}" xmlns:CS="{CS}"><D:prop><CS:getctag/><D:sync-token/></D:prop></D:propfind>"#
        );
        let req = self
            .request(
                Method::from_bytes(b"PROPFIND").unwrap_or(Method::GET),
                &self.url,
            )
            .header("Depth", "0")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body);
        let resp = self.send(req, &self.url).await?;
        let text = body_text(&self.url, resp).await?;
        let doc = xml(&self.url, &text)?;
        let find = |ns: &str, name: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name((ns, name)))
                .and_then(|n| n.text())
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        };
        Ok(find(CS, "getctag").or_else(|| find(DAV, "sync-token")))
    }

    fn resource_url(&self, href: &str) -> Result<reqwest::Url, SourceError> {
        self.url.join(href).map_err(|e| SourceError::BadAnswer {
            url: self.url.to_string(),
            reason: format!("bad href `{href}`: {e}"),
        })
    }
}

async fn body_text(url: &reqwest::Url, resp: reqwest::Response) -> Result<String, SourceError> {
    body(url.as_str(), resp).await
}

fn xml<'a>(url: &reqwest::Url, text: &'a str) -> Result<roxmltree::Document<'a>, SourceError> {
    roxmltree::Document::parse(text).map_err(|e| SourceError::BadAnswer {
        url: redact(url.as_str()),
        reason: format!("not a WebDAV answer: {e}"),
    })
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

#[async_trait::async_trait]
impl super::Source for CalDav {
    async fn fetch(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Option<Fetched>, SourceError> {
        let version = self.version().await?;
        if let (Some(v), Some((seen, window))) = (&version, &self.version) {
            if v == seen && *window == from {
                return Ok(None);
            }
        }
        let query = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="{DAV}" xmlns:C="{CALDAV}">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{}" end="{}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"#,
            utc(from),
            utc(to)
        );
        let req = self
            .request(
                Method::from_bytes(b"REPORT").unwrap_or(Method::GET),
                &self.url,
            )
            .header("Depth", "1")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(query);
        let resp = self.send(req, &self.url).await?;
        let text = body_text(&self.url, resp).await?;
        let doc = xml(&self.url, &text)?;
        let mut out = Fetched::default();
        for r in doc
            .descendants()
            .filter(|n| n.has_tag_name((DAV, "response")))
        {
            let href = r
                .descendants()
                .find(|n| n.has_tag_name((DAV, "href")))
                .and_then(|n| n.text())
                .unwrap_or("")
                .trim()
                .to_string();
            let etag = r
                .descendants()
                .find(|n| n.has_tag_name((DAV, "getetag")))
                .and_then(|n| n.text())
                .map(|t| t.trim().to_string());
            let Some(data) = r
                .descendants()
                .find(|n| n.has_tag_name((CALDAV, "calendar-data")))
                .and_then(|n| n.text())
            else {
                continue;
            };
            match crate::calendar::parse(data) {
                Ok(parsed) => {
                    for e in &parsed.events {
                        if !out.resources.iter().any(|x| x.uid == e.uid) {
                            out.resources.push(Resource {
                                uid: e.uid.clone(),
                                href: href.clone(),
                                etag: etag.clone(),
                            });
                        }
                    }
                    out.parsed.events.extend(parsed.events);
                    out.parsed.problems.extend(parsed.problems);
                }
                Err(e) => out.parsed.problems.push(format!("{href}: {e}")),
            }
            if out.parsed.events.len() > crate::calendar::MAX_EVENTS {
                return Err(SourceError::Parse {
                    url: redact(self.url.as_str()),
                    source: crate::calendar::ParseError::TooManyEvents,
                });
            }
        }
        self.resources = out.resources.clone();
        self.version = version.map(|v| (v, from));
        Ok(Some(out))
    }

    async fn book(&mut self, b: &Booking) -> Result<(), SourceError> {
        let url = self.resource_url(&format!("{}.ics", b.uid))?;
        let req = self
            .request(Method::PUT, &url)
            .header("If-None-Match", "*")
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(edit::booking_ics(b, Utc::now()));
        let resp = req
            .send()
            .await
            .map_err(|e| unreachable(url.as_str(), &e))?;
        self.version = None;
        match resp.status() {
            s if s.is_success() => Ok(()),
            // 412: the object exists, someone booked this free time first. Some servers say
            // 409 Conflict for the same.
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => Err(SourceError::Conflict),
            s => Err(status_error(url.as_str(), s)),
        }
    }

    async fn release(
        &mut self,
        m: &Meeting,
        room_address: Option<&str>,
    ) -> Result<(), SourceError> {
        let res = self
            .resources
            .iter()
            .find(|r| r.uid == m.uid)
            .cloned()
            .ok_or(SourceError::Unsupported(
                "the meeting is no longer on the calendar",
            ))?;
        let url = self.resource_url(&res.href)?;
        let resp = self.send(self.request(Method::GET, &url), &url).await?;
        let etag = resp
            .headers()
            .get("ETag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or(res.etag);
        let text = body_text(&url, resp).await?;
        let mut req = if m.booked_here && m.recurrence_id.is_none() {
            self.request(Method::DELETE, &url)
        } else {
            let room = room_address.ok_or(SourceError::Unsupported(
                "declining a meeting needs calendar.room_address (the room's attendee address)",
            ))?;
            let new = edit::decline(&text, m, room).map_err(|reason| SourceError::BadAnswer {
                url: redact(url.as_str()),
                reason,
            })?;
            self.request(Method::PUT, &url)
                .header("Content-Type", "text/calendar; charset=utf-8")
                .body(new)
        };
        if let Some(tag) = etag {
            req = req.header("If-Match", tag);
        }
        self.version = None;
        self.send(req, &url).await.map(|_| ())
    }
}
