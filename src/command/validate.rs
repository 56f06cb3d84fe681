//! The checks of a command's values that its types alone do not make: lengths, ranges, names,
//! URLs. A command that fails them is refused before the agent sees it.

use super::viewers::{poll_shape, viewer_name, viewer_text};
use super::{Command, CommandError, ErrorCode};

impl Command {
    /// Checks value ranges that the types alone do not.
    pub fn validate(&self) -> Result<(), CommandError> {
        let range = |what: &str, msg: String| {
            Err(CommandError::new(
                ErrorCode::OutOfRange,
                format!("{what}: {msg}"),
            ))
        };
        match self {
            Command::Join {
                room_id,
                display_name,
                metadata,
                ..
            } => {
                if let Some(r) = room_id {
                    if r.is_empty() || r.len() > 128 || r.chars().any(|c| c.is_control()) {
                        return range("roomId", "must be 1 to 128 printable characters".into());
                    }
                }
                if let Some(n) = display_name {
                    if n.len() > 128 || n.chars().any(|c| c.is_control()) {
                        return range(
                            "displayName",
                            "must be at most 128 printable characters".into(),
                        );
                    }
                }
                if let Some(m) = metadata {
                    let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
                    if size > 4096 {
                        return range("metadata", format!("is {size} bytes; at most 4096"));
                    }
                }
                Ok(())
            }
            Command::SendChat { message, .. } => {
                if message.is_empty() || message.len() > 4096 {
                    return range("message", "must be 1 to 4096 bytes".into());
                }
                Ok(())
            }
            Command::StartLivestream { outputs } => {
                if outputs.len() > 8 {
                    return range("outputs", "at most 8 outputs".into());
                }
                for (i, o) in outputs.iter().enumerate() {
                    if let Err(m) = crate::model::check_url(&o.url) {
                        return range("outputs.url", m);
                    }
                    if let Some(name) = &o.name {
                        if let Err(m) = crate::model::check_output_name(name) {
                            return range("outputs.name", m);
                        }
                        if outputs[..i].iter().any(|p| p.name.as_ref() == Some(name)) {
                            return range("outputs.name", format!("`{name}` is used twice"));
                        }
                    }
                }
                Ok(())
            }
            Command::SetBitrate { kbps } => {
                if !(100..=50_000).contains(kbps) {
                    return range("kbps", format!("{kbps} is outside 100..=50000"));
                }
                Ok(())
            }
            Command::Pin {
                participant_id: Some(id),
            } if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control()) => range(
                "participantId",
                "must be 1 to 128 printable characters".into(),
            ),
            Command::SetOutputSource { output, name, .. } => match (output, name) {
                (crate::model::OutputKind::Livestream, Some(n))
                    if n.is_empty() || n.len() > 64 || n.chars().any(|c| c.is_control()) =>
                {
                    range("name", "must be 1 to 64 printable characters".into())
                }
                (crate::model::OutputKind::Livestream, _) | (_, None) => Ok(()),
                (_, Some(_)) => range("name", "names an RTMP output: only for `livestream`".into()),
            },
            Command::SetVolume { percent } => {
                if *percent > 100 {
                    return range("percent", format!("{percent} is outside 0..=100"));
                }
                Ok(())
            }
            Command::JoinMeeting { event_id }
                if event_id.is_empty()
                    || event_id.len() > 512
                    || event_id.chars().any(|c| c.is_control()) =>
            {
                range("eventId", "must be 1 to 512 printable characters".into())
            }
            Command::Update { manifest, .. } => manifest.check_shape().map_err(|m| {
                CommandError::new(ErrorCode::InvalidArgument, format!("manifest.{m}"))
            }),
            Command::BookNow { minutes } if ![15, 30, 60].contains(minutes) => {
                range("minutes", format!("{minutes} is not 15, 30 or 60"))
            }
            Command::Identify { seconds } => {
                if !(1..=600).contains(seconds) {
                    return range("seconds", format!("{seconds} is outside 1..=600"));
                }
                Ok(())
            }
            Command::ViewerChat {
                name,
                message: text,
            }
            | Command::AskQuestion { name, text } => {
                viewer_text(name, text).map_err(|m| CommandError::new(ErrorCode::OutOfRange, m))
            }
            Command::CreatePoll { question, options } => poll_shape(question, options)
                .map_err(|m| CommandError::new(ErrorCode::OutOfRange, m)),
            Command::Vote { name, .. } => {
                viewer_name(name).map_err(|m| CommandError::new(ErrorCode::OutOfRange, m))
            }
            Command::StartTranscription {
                language: Some(language),
            } if language.is_empty() || language.len() > 16 => {
                range("language", "must be a language tag like en-US".into())
            }
            Command::TranscribeRecording { file, from, to } => {
                if file.is_some() && (from.is_some() || to.is_some()) {
                    return Err(CommandError::new(
                        ErrorCode::InvalidArgument,
                        "give either file or from/to, not both",
                    ));
                }
                if let Some(f) = file {
                    if f.is_empty() || f.len() > 255 || f.contains('/') || f.starts_with('.') {
                        return Err(CommandError::new(
                            ErrorCode::InvalidArgument,
                            "file: expected a segment's file name in the recording directory",
                        ));
                    }
                }
                if let (Some(a), Some(b)) = (from, to) {
                    if a > b {
                        return range("from", format!("{a} is after to ({b})"));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
