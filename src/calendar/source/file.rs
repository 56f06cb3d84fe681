//! A local `.ics` file, for a box with no server. Unchanged size and modification time mean
//! nothing changed.

use super::{Fetched, SourceError};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::time::SystemTime;

pub struct IcsFile {
    path: PathBuf,
    /// Size and time of the last good read, and its window.
    seen: Option<(u64, SystemTime, DateTime<Utc>)>,
}

impl IcsFile {
    pub fn new(path: PathBuf) -> IcsFile {
        IcsFile { path, seen: None }
    }
}

#[async_trait::async_trait]
impl super::Source for IcsFile {
    async fn fetch(
        &mut self,
        from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> Result<Option<Fetched>, SourceError> {
        let err = |e: std::io::Error| SourceError::File {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        };
        let meta = tokio::fs::metadata(&self.path).await.map_err(err)?;
        let stamp = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            from,
        );
        if self.seen == Some(stamp) {
            return Ok(None);
        }
        if meta.len() as usize > crate::calendar::MAX_ICS_BYTES {
            return Err(SourceError::Parse {
                url: self.path.display().to_string(),
                source: crate::calendar::ParseError::TooLarge(meta.len() as usize),
            });
        }
        let text = tokio::fs::read(&self.path).await.map_err(err)?;
        let text = String::from_utf8_lossy(&text);
        let parsed = crate::calendar::parse(&text).map_err(|source| SourceError::Parse {
            url: self.path.display().to_string(),
            source,
        })?;
        self.seen = Some(stamp);
        Ok(Some(Fetched {
            parsed,
            resources: Vec::new(),
        }))
    }
}
