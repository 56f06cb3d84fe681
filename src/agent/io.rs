//! The I/O the state machine asks for, carried out for the agent loop: resolving RTMP hosts,
//! loading the speech engine, listing a recording's segments; and the setups read from files
//! (stream keys) or derived from the configuration for the transcription queue. Results go back
//! to the loop as [`Done`], which it hands to the machine as [`IoNotice`]s.

use super::state::{
    AgentState, EngineLoadFailed, HostUnresolved, IoNotice, LivestreamSetup, Token,
};
use crate::config::Config;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// What an I/O task reports back to the loop.
pub(super) enum Done {
    /// A result for the machine as it is.
    Notice(IoNotice),
    /// The speech engine loaded (kept here for the start that follows), or not.
    Engine {
        token: Token,
        result: Result<Box<dyn crate::transcribe::Transcriber>, EngineLoadFailed>,
    },
}

/// Resolves each URL's host in turn; the first that does not resolve is the answer.
pub(super) async fn resolve_hosts(
    token: Token,
    urls: Vec<String>,
    tx: mpsc::UnboundedSender<Done>,
) {
    let mut result = Ok(());
    for (index, url) in urls.iter().enumerate() {
        if let Err(error) = resolve_host(url).await {
            result = Err(HostUnresolved { index, error });
            break;
        }
    }
    let _ = tx.send(Done::Notice(IoNotice::HostsResolved { token, result }));
}

/// Loads the speech engine off the loop's thread (a 75 MB model).
pub(super) fn load_speech_engine(
    config: &Config,
    token: Token,
    language: String,
    tx: mpsc::UnboundedSender<Done>,
) {
    let t = &config.transcription;
    let model = t.model_path(&config.state_dir());
    let gate = t.gate_path(&config.state_dir());
    let threads = t.threads as usize;
    tokio::spawn(async move {
        let loaded = tokio::task::spawn_blocking(move || {
            crate::transcribe::service::load_engine(&model, &language, threads, gate.as_deref())
        })
        .await;
        let result = match loaded {
            Ok(r) => r.map_err(EngineLoadFailed::Engine),
            Err(e) => Err(EngineLoadFailed::Crashed(e.to_string())),
        };
        let _ = tx.send(Done::Engine { token, result });
    });
}

/// A recording's segments in `dir`; with `skip_newest` the newest one, still being written by
/// the running recording, is left out.
pub(super) fn find_segments(
    dir: &Path,
    file: Option<&str>,
    from: Option<u64>,
    to: Option<u64>,
    skip_newest: bool,
) -> Result<Vec<PathBuf>, String> {
    let writing = if skip_newest {
        newest_segment(dir)
    } else {
        None
    };
    crate::transcribe::post::select_segments(dir, file, from, to, writing.as_deref())
}

/// What the recordings' transcription needs from the configuration.
pub(super) fn post_setup(
    config: &Config,
    state: &AgentState,
) -> crate::transcribe::post::PostSetup {
    let t = &config.transcription;
    crate::transcribe::post::PostSetup {
        model: t.model_path(&config.state_dir()),
        language: crate::config::language_code(&t.language).unwrap_or_else(|| "en".into()),
        threads: t.threads as usize,
        gate: t.gate_path(&config.state_dir()),
        speaker: (
            state.local_participant.participant_id.clone(),
            state.local_participant.display_name.clone(),
        ),
    }
}

/// The most recently written segment in `dir`.
fn newest_segment(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(crate::media::recorder::SEGMENT_PREFIX)
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}

/// `[livestream]` with its stream key files read.
pub(super) fn livestream_setup(config: &Config) -> LivestreamSetup {
    LivestreamSetup::resolve(&config.livestream, |p| std::fs::read_to_string(p))
}

/// Resolves the host of an RTMP URL within a few seconds, so a typo is an error reply and not
/// an output that retries for ever.
async fn resolve_host(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split('/').next().unwrap_or_default();
    let default_port = if url.starts_with("rtmps://") {
        443
    } else {
        1935
    };
    let target = if host.starts_with('[')
        || host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    };
    match tokio::time::timeout(Duration::from_secs(3), tokio::net::lookup_host(target)).await {
        Ok(Ok(addrs)) => match addrs.count() {
            0 => Err(format!("host `{host}` has no address")),
            _ => Ok(()),
        },
        Ok(Err(e)) => Err(format!("cannot resolve host `{host}`: {e}")),
        Err(_) => Err(format!("resolving host `{host}` timed out")),
    }
}
