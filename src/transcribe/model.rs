//! Finding and recognising a model file before the engine loads it, so `roombox check` and a
//! refused `start-transcription` can say what is wrong in words (missing, empty, not a
//! whisper.cpp model) without loading 75 MB.

use super::TranscribeError;
use std::io::Read;
use std::path::Path;

/// whisper.cpp's ggml files start with this little-endian magic (`ggml`).
const GGML_MAGIC: u32 = 0x6767_6d6c;
/// A ggml Whisper model is at least this big (tiny is 75 MB; its header alone is about 1 KB).
const MIN_BYTES: u64 = 1 << 20;

/// Checks that `path` looks like a whisper.cpp model and describes it (`ggml-tiny.en.bin,
/// 74.1 MiB, whisper.cpp ggml`).
pub fn inspect(path: &Path) -> Result<String, TranscribeError> {
    let err = |reason: String| TranscribeError::Model {
        path: path.display().to_string(),
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| {
        err(match e.kind() {
            std::io::ErrorKind::NotFound => "there is no such file".into(),
            _ => e.to_string(),
        })
    })?;
    let meta = f.metadata().map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("is not a file".into()));
    }
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)
        .map_err(|_| err("is too short to be a model".into()))?;
    if u32::from_le_bytes(magic) != GGML_MAGIC {
        return Err(err("is not a whisper.cpp (ggml) model".into()));
    }
    if meta.len() < MIN_BYTES {
        return Err(err(format!(
            "is {} bytes, too small to be a whole model",
            meta.len()
        )));
    }
    Ok(format!(
        "{}, {:.1} MiB, whisper.cpp ggml",
        path.display(),
        meta.len() as f64 / f64::from(1 << 20)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_garbage_and_truncated_models_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let e = inspect(&dir.path().join("none.bin")).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, vec![7u8; 2 << 20]).unwrap();
        assert!(inspect(&junk)
            .unwrap_err()
            .to_string()
            .contains("not a whisper.cpp"));
        let short = dir.path().join("short.bin");
        std::fs::write(&short, GGML_MAGIC.to_le_bytes()).unwrap();
        assert!(inspect(&short)
            .unwrap_err()
            .to_string()
            .contains("too small"));
        let mut ok = GGML_MAGIC.to_le_bytes().to_vec();
        ok.resize(2 << 20, 0);
        let good = dir.path().join("ggml-tiny.en.bin");
        std::fs::write(&good, ok).unwrap();
        assert!(inspect(&good).unwrap().contains("whisper.cpp ggml"));
    }
}
