//! The recordings' transcription, as the state machine sees it: `transcribe-recording` (the
//! segments listed on disk by the agent loop, [`Effect::FindSegments`]) and `post_on_stop` (the
//! segments a local recording closed, once it stopped), queued with the transcription queue;
//! their progress comes back with the live transcriber's notices.

use super::super::{Effect, StateMachine, Step, Token};
use crate::command::ErrorCode;
use crate::transcribe::live::TranscriptionAction;
use std::path::PathBuf;

impl StateMachine {
    /// `transcribe-recording`: its segments are listed on disk by the agent loop.
    pub(in crate::agent::state) fn request_recording_transcription(
        &mut self,
        file: Option<String>,
        from: Option<u64>,
        to: Option<u64>,
    ) -> Step {
        let token = self.token();
        self.pending.transcription.finding.insert(token);
        Step::later(
            token,
            vec![Effect::FindSegments {
                token,
                dir: self.setup.recording.dir.clone(),
                file,
                from,
                to,
                // The segment being written is the newest while a recording runs; it is not done.
                skip_newest: self.state.recording.state.is_active(),
            }],
        )
    }

    /// The segments of a `transcribe-recording` were found (queued, and listed in the reply),
    /// or there are none.
    pub(in crate::agent::state) fn segments_found(
        &mut self,
        token: Token,
        result: Result<Vec<PathBuf>, String>,
    ) -> Step {
        if !self.pending.transcription.finding.remove(&token) {
            return Step::err(
                ErrorCode::Internal,
                "no transcribe-recording waits for segments",
            );
        }
        let segments = match result {
            Ok(s) => s,
            Err(message) => return Step::err(ErrorCode::InvalidArgument, message),
        };
        let names: Vec<String> = segments
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        Step::reply(
            Ok(serde_json::json!({ "ok": true, "segments": names })),
            vec![Effect::Transcription(TranscriptionAction::TranscribeFiles(
                segments,
            ))],
        )
    }

    /// With `post_on_stop`, the segments a recording closed are transcribed once it stops.
    pub(in crate::agent::state) fn post_on_stop(&mut self) -> Vec<Effect> {
        let files = std::mem::take(&mut self.pending.recording.files);
        if !self.setup.transcription.post_on_stop || files.is_empty() {
            return Vec::new();
        }
        vec![Effect::Transcription(TranscriptionAction::TranscribeFiles(
            files.into_iter().map(std::path::PathBuf::from).collect(),
        ))]
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests_support::*;
    use super::super::super::{IoNotice, Reply};
    use super::*;
    use crate::command::Command;
    use crate::media::{ConsumerId, MediaNotice};

    #[test]
    fn a_recording_is_found_on_disk_then_queued() {
        let mut s = state();
        let step = s.command(
            &Command::TranscribeRecording {
                file: Some("rec-1.mkv".into()),
                from: None,
                to: None,
            },
            0,
        );
        let Reply::Later(token) = step.reply else {
            panic!("{step:?}")
        };
        assert!(
            matches!(&step.effects[..], [Effect::FindSegments { file: Some(f), skip_newest: false, .. }] if f == "rec-1.mkv")
        );
        let step = s.io_notice(IoNotice::SegmentsFound {
            token,
            result: Ok(vec!["/r/rec-1.mkv".into(), "/r/rec-2.mkv".into()]),
        });
        assert_eq!(
            step.reply.result().unwrap()["segments"],
            serde_json::json!(["rec-1.mkv", "rec-2.mkv"])
        );
        assert!(
            matches!(&step.effects[..], [Effect::Transcription(TranscriptionAction::TranscribeFiles(f))] if f.len() == 2)
        );
        let Reply::Later(token) = s
            .command(
                &Command::TranscribeRecording {
                    file: None,
                    from: None,
                    to: None,
                },
                0,
            )
            .reply
        else {
            panic!()
        };
        let step = s.io_notice(IoNotice::SegmentsFound {
            token,
            result: Err("no recording".into()),
        });
        assert_eq!(step.reply.unwrap_err().code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn post_on_stop_transcribes_the_segments_the_recording_closed() {
        let mut c = crate::config::Config::default();
        c.transcription.post_on_stop = true;
        let mut s = StateMachine::new(&c, "b".into());
        assert!(s
            .command(
                &Command::StartRecording {
                    target: crate::model::RecordingTarget::Local
                },
                0
            )
            .reply
            .is_ok());
        let rec = |e| MediaNotice::Consumer {
            id: ConsumerId::Recorder,
            event: e,
        };
        s.media_notice(rec(crate::media::ConsumerEvent::Started));
        for p in ["/r/a.mkv", "/r/b.mkv"] {
            s.media_notice(rec(crate::media::ConsumerEvent::FileClosed {
                path: p.into(),
                bytes: 1,
            }));
        }
        let fx = s.media_notice(rec(crate::media::ConsumerEvent::Finished));
        assert!(fx.contains(&Effect::Transcription(
            TranscriptionAction::TranscribeFiles(vec!["/r/a.mkv".into(), "/r/b.mkv".into()])
        )));
        // Without post_on_stop, nothing is queued.
        let mut s = state();
        s.media_notice(rec(crate::media::ConsumerEvent::FileClosed {
            path: "/r/a.mkv".into(),
            bytes: 1,
        }));
        let fx = s.media_notice(rec(crate::media::ConsumerEvent::Finished));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Transcription(_))));
    }
}
