//! Finding and describing a model file for `roombox check`, without loading it: whether it is
//! there, and whether it is a whole whisper.cpp model ([`super::ggml::check`] walks its
//! structure), in words a person can act on.

use super::TranscribeError;
use std::path::Path;

/// Checks the model at `path` and describes it (`/x/ggml-tiny.en.bin: whisper.cpp tiny,
/// English-only, f16, 74.1 MiB`).
pub fn inspect(path: &Path) -> Result<String, TranscribeError> {
    let err = |reason: String| TranscribeError::Model {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        err(match e.kind() {
            std::io::ErrorKind::NotFound => "there is no such file".into(),
            _ => e.to_string(),
        })
    })?;
    let info = super::ggml::check(path).map_err(err)?;
    Ok(format!(
        "{}: whisper.cpp {}, {}, {}, {:.1} MiB",
        path.display(),
        info.size,
        if info.multilingual {
            "multilingual"
        } else {
            "English-only"
        },
        info.weights,
        meta.len() as f64 / f64::from(1 << 20)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_garbage_models_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let e = inspect(&dir.path().join("none.bin")).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, vec![7u8; 4096]).unwrap();
        let e = inspect(&junk).unwrap_err();
        assert!(!e.to_string().contains("no such file"), "{e}");
        assert!(e.to_string().contains("junk.bin"), "{e}");
    }
}
