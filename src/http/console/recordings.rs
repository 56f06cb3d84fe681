//! The installer's recordings list and downloads: the local recording's segments, each with its
//! WebVTT transcript when one sits beside it (`<segment stem>.vtt`).

use super::{gate, refuse, Need, Req};
use crate::command::ErrorCode;
use crate::http::Shared;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;

/// Extensions served: the recorder's containers and transcripts. Nothing else in the directory
/// (a segment being written is listed, since a robust MP4 plays while it grows).
const SERVED: &[&str] = &["mp4", "mkv", "vtt"];

/// One recording segment.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    /// File name in the recordings directory.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Last modified, ms since the epoch.
    pub modified_ms: u64,
    /// Its transcript's file name, when there is one.
    pub transcript: Option<String>,
}

/// True for a bare file name the routes serve: no path separator, not hidden, a served
/// extension. Keeps `..` and absolute paths out before the file system is touched.
pub fn servable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name
            .rsplit_once('.')
            .is_some_and(|(_, ext)| SERVED.contains(&ext))
}

/// The recordings in `dir`, newest first.
pub fn scan(dir: &std::path::Path) -> Vec<Recording> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<(String, std::fs::Metadata)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?)))
        .filter(|(n, m)| m.is_file() && servable(n))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let vtts: Vec<String> = names
        .iter()
        .filter(|(n, _)| n.ends_with(".vtt"))
        .map(|(n, _)| n.clone())
        .collect();
    let mut out: Vec<Recording> = names
        .iter()
        .filter(|(n, _)| !n.ends_with(".vtt"))
        .map(|(n, m)| {
            let stem = n.rsplit_once('.').map(|(s, _)| s).unwrap_or(n);
            let vtt = format!("{stem}.vtt");
            Recording {
                name: n.clone(),
                bytes: m.len(),
                modified_ms: m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                transcript: vtts.contains(&vtt).then_some(vtt),
            }
        })
        .collect();
    out.sort_by(|a, b| b.modified_ms.cmp(&a.modified_ms).then(b.name.cmp(&a.name)));
    out
}

/// `GET /api/recordings`.
pub(crate) async fn list(State(s): State<Arc<Shared>>, r: Req) -> Response {
    if let Err(resp) = gate(&s, &r, Need::Console) {
        return resp.into_response();
    }
    let dir = s.agent.config().borrow().recording_dir();
    match tokio::task::spawn_blocking(move || scan(&dir)).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        ),
    }
}

/// `GET /api/recordings/{file}`: the file, streamed (segments can be large).
pub(crate) async fn download(
    State(s): State<Arc<Shared>>,
    Path(file): Path<String>,
    r: Req,
) -> Response {
    if let Err(resp) = gate(&s, &r, Need::Console) {
        return resp.into_response();
    }
    if !servable(&file) {
        return refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::InvalidArgument,
            "no such recording",
        );
    }
    let path = s.agent.config().borrow().recording_dir().join(&file);
    let f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => {
            return refuse(
                StatusCode::NOT_FOUND,
                ErrorCode::InvalidArgument,
                "no such recording",
            )
        }
    };
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let ctype = match file.rsplit_once('.').map(|(_, e)| e) {
        Some("mp4") => "video/mp4",
        Some("mkv") => "video/x-matroska",
        _ => "text/vtt; charset=utf-8",
    };
    let stream = futures::stream::unfold(f, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    (
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_recording_names_are_served() {
        for ok in ["seg-0001.mp4", "a.mkv", "a.vtt"] {
            assert!(servable(ok), "{ok}");
        }
        for bad in [
            "../etc/passwd.mp4",
            "/abs.mp4",
            ".hidden.mp4",
            "a.txt",
            "mp4",
            "",
            "a\\b.mp4",
        ] {
            assert!(!servable(bad), "{bad}");
        }
    }

    #[test]
    fn segments_are_listed_newest_first_with_their_transcripts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s1.mp4"), b"x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("s2.mp4"), b"xy").unwrap();
        std::fs::write(dir.path().join("s1.vtt"), b"WEBVTT\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"-").unwrap();
        let l = scan(dir.path());
        let names: Vec<_> = l.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["s2.mp4", "s1.mp4"]);
        assert_eq!(l[1].transcript.as_deref(), Some("s1.vtt"));
        assert_eq!(l[0].transcript, None);
        assert_eq!(l[0].bytes, 2);
    }
}
