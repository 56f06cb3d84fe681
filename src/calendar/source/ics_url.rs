//! An iCalendar subscription URL (the secret `.ics` links Google and Outlook publish), read
//! with `If-None-Match` on its last ETag: an unchanged calendar is a `304` and no body.

use super::{body, client, redact, status_error, unreachable, Credentials, Fetched, SourceError};
use chrono::{DateTime, Utc};
use std::time::Duration;

pub struct IcsUrl {
    url: String,
    creds: Option<Credentials>,
    http: reqwest::Client,
    /// The ETag of the last good read, and the window it was read for.
    etag: Option<(String, DateTime<Utc>)>,
}

impl IcsUrl {
    pub fn new(
        url: &str,
        creds: Option<Credentials>,
        timeout: Duration,
    ) -> Result<IcsUrl, SourceError> {
        Ok(IcsUrl {
            url: url.to_string(),
            creds,
            http: client(timeout, url)?,
            etag: None,
        })
    }
}

#[async_trait::async_trait]
impl super::Source for IcsUrl {
    async fn fetch(
        &mut self,
        from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> Result<Option<Fetched>, SourceError> {
        let mut req = self.http.get(&self.url).header("Accept", "text/calendar");
        if let Some(c) = &self.creds {
            req = req.basic_auth(&c.username, Some(c.password.expose()));
        }
        // A new day is read whole even if the file did not change: the window moved.
        if let Some((tag, _)) = self.etag.as_ref().filter(|(_, f)| *f == from) {
            req = req.header("If-None-Match", tag);
        }
        let resp = req.send().await.map_err(|e| unreachable(&self.url, &e))?;
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(status_error(&self.url, resp.status()));
        }
        let etag = resp
            .headers()
            .get("ETag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = body(&self.url, resp).await?;
        let parsed = crate::calendar::parse(&text).map_err(|source| SourceError::Parse {
            url: redact(&self.url),
            source,
        })?;
        self.etag = etag.map(|t| (t, from));
        Ok(Some(Fetched {
            parsed,
            resources: Vec::new(),
        }))
    }
}
