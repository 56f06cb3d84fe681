//! Checks a whisper.cpp ggml model file before whisper.cpp sees it.
//!
//! whisper.cpp trusts its input: a garbage header makes it allocate whatever sizes the file
//! claims (a C++ `bad_alloc` across the C boundary aborts the process), and a few checks are
//! `GGML_ASSERT`s. The box must answer a bad `model` path with an error and stay up, so the file's
//! whole structure is walked here first: the header's numbers must be those of a Whisper model,
//! and every vocabulary entry and tensor must lie inside the file, which must end where the last
//! tensor does. whisper.cpp still checks each tensor's name and shape itself, and fails cleanly.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// "ggml", the first four bytes of the file, little-endian.
const MAGIC: u32 = 0x6767_6d6c;
/// Quantized files carry the quantization version in the thousands of `ftype`.
const QNT_VERSION_FACTOR: i32 = 1000;

/// What a valid file's header says, for logs and `describe()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Whisper's size by encoder layers: tiny, base, small, medium or large.
    pub size: &'static str,
    /// Whether the model knows more than English (`n_vocab` 51865 or more; the `.en` models
    /// have 51864).
    pub multilingual: bool,
    /// The weights' type: f32, f16, q8_0, q5_0 ...
    pub weights: &'static str,
    /// How many tensors the file holds.
    pub tensors: usize,
}

/// Bytes per block and values per block of a ggml tensor type, by its number in the file.
fn type_size(ttype: i32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (4, 1),     // f32
        1 => (2, 1),     // f16
        2 => (18, 32),   // q4_0
        3 => (20, 32),   // q4_1
        6 => (22, 32),   // q5_0
        7 => (24, 32),   // q5_1
        8 => (34, 32),   // q8_0
        10 => (84, 256), // q2_k
        11 => (110, 256),
        12 => (144, 256),
        13 => (176, 256),
        14 => (210, 256), // q6_k
        _ => return None,
    })
}

/// The model-wide weight type, from the header's `ftype` (a `ggml_ftype`).
fn ftype_name(ftype: i32) -> Option<&'static str> {
    Some(match ftype {
        0 => "f32",
        1 => "f16",
        2 => "q4_0",
        3 => "q4_1",
        7 => "q8_0",
        8 => "q5_0",
        9 => "q5_1",
        10 => "q2_k",
        11 => "q3_k",
        12 => "q4_k",
        13 => "q5_k",
        14 => "q6_k",
        _ => return None,
    })
}

/// Walks the file at `path`; the error says in words what is wrong with it.
pub fn check(path: &Path) -> Result<ModelInfo, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat it: {e}"))?
        .len();
    if len == 0 {
        return Err("it is empty".into());
    }
    let mut r = Reader {
        inner: BufReader::new(file),
        pos: 0,
        len,
    };
    if r.u32()? != MAGIC {
        return Err(
            "it is not a ggml model (bad magic; a whisper.cpp model starts with \"lmgg\")".into(),
        );
    }
    let h: Vec<i32> = (0..11).map(|_| r.i32()).collect::<Result<_, _>>()?;
    let [n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype] =
        h[..]
    else {
        return Err("short header".into());
    };
    let size = match n_audio_layer {
        4 => "tiny",
        6 => "base",
        12 => "small",
        24 => "medium",
        32 => "large",
        n => return Err(format!("{n} encoder layers is not a Whisper model")),
    };
    let sane = (51_864..=51_866).contains(&n_vocab)
        && n_audio_ctx == 1500
        && n_text_ctx == 448
        && (n_mels == 80 || n_mels == 128)
        && n_audio_state == n_text_state
        && [384, 512, 768, 1024, 1280].contains(&n_audio_state)
        && n_audio_head > 0
        && n_text_head > 0
        && n_audio_state % n_audio_head == 0
        && n_text_state % n_text_head == 0
        && (1..=32).contains(&n_text_layer);
    if !sane {
        return Err(format!(
            "its header is not a Whisper model's (n_vocab {n_vocab}, n_audio_ctx {n_audio_ctx}, \
             n_audio_state {n_audio_state}, n_text_state {n_text_state}, n_mels {n_mels})"
        ));
    }
    let weights = ftype_name(ftype % QNT_VERSION_FACTOR)
        .ok_or_else(|| format!("unknown weight type {ftype} in its header"))?;

    let (n_mel, n_fft) = (r.i32()?, r.i32()?);
    if n_mel != n_mels || n_fft != 201 {
        return Err(format!(
            "its mel filters are {n_mel}x{n_fft}, expected {n_mels}x201"
        ));
    }
    r.skip(u64::from(n_mel.unsigned_abs()) * 201 * 4, "the mel filters")?;

    let n_tokens = r.i32()?;
    if !(0..=n_vocab).contains(&n_tokens) {
        return Err(format!("its vocabulary claims {n_tokens} tokens"));
    }
    for i in 0..n_tokens {
        let l = r.u32()?;
        if l > 1024 {
            return Err(format!("token {i} claims {l} bytes"));
        }
        r.skip(u64::from(l), "the vocabulary")?;
    }

    let mut tensors = 0;
    while r.pos < len {
        let (n_dims, name_len, ttype) = (r.i32()?, r.i32()?, r.i32()?);
        if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(format!(
                "tensor {tensors} has a bad header ({n_dims} dims, a {name_len}-byte name)"
            ));
        }
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            let ne = r.i32()?;
            if !(1..=1 << 20).contains(&ne) {
                return Err(format!("tensor {tensors} has a dimension of {ne}"));
            }
            elements = elements.saturating_mul(ne.unsigned_abs().into());
        }
        let mut name = vec![0; name_len.unsigned_abs() as usize];
        r.read(&mut name)?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let (block_bytes, block_len) =
            type_size(ttype).ok_or_else(|| format!("tensor {name} has an unknown type {ttype}"))?;
        if elements % block_len != 0 {
            return Err(format!(
                "tensor {name} has {elements} values, not whole blocks of its type"
            ));
        }
        r.skip(elements / block_len * block_bytes, &name)?;
        tensors += 1;
    }
    if tensors == 0 {
        return Err("it holds no tensors".into());
    }
    Ok(ModelInfo {
        size,
        multilingual: n_vocab > 51_864,
        weights,
        tensors,
    })
}

/// A reader that knows where it is and how long the file is, so a claimed size past the end is
/// reported as a truncation instead of being read.
struct Reader<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<(), String> {
        if self.pos + buf.len() as u64 > self.len {
            return Err(self.truncated());
        }
        self.inner
            .read_exact(buf)
            .map_err(|e| format!("read error: {e}"))?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0; 4];
        self.read(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let mut b = [0; 4];
        self.read(&mut b)?;
        Ok(i32::from_le_bytes(b))
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        if self.pos.saturating_add(n) > self.len {
            return Err(format!("{} (in {what})", self.truncated()));
        }
        let off = i64::try_from(n).map_err(|_| self.truncated())?;
        self.inner
            .seek(SeekFrom::Current(off))
            .map_err(|e| format!("read error: {e}"))?;
        self.pos += n;
        Ok(())
    }

    fn truncated(&self) -> String {
        format!(
            "it is truncated: it ends at byte {} where more was expected",
            self.len
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A structurally valid tiny.en-shaped file with one small tensor.
    fn model(tensor_bytes: usize, extra: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(MAGIC.to_le_bytes());
        for v in [51_864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1] {
            b.extend(i32::to_le_bytes(v));
        }
        b.extend(80i32.to_le_bytes());
        b.extend(201i32.to_le_bytes());
        b.extend(vec![0; 80 * 201 * 4]);
        b.extend(2i32.to_le_bytes());
        for tok in [&b"a"[..], b"bc"] {
            b.extend((tok.len() as u32).to_le_bytes());
            b.extend(tok);
        }
        let name = b"decoder.ln.weight";
        for v in [1, name.len() as i32, 0, 384] {
            b.extend(i32::to_le_bytes(v));
        }
        b.extend(name);
        b.extend(vec![0; tensor_bytes]);
        b.extend(extra);
        b
    }

    fn check_bytes(bytes: &[u8]) -> Result<ModelInfo, String> {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(bytes).expect("write");
        check(f.path())
    }

    #[test]
    fn a_well_formed_file_passes() {
        let info = check_bytes(&model(384 * 4, &[])).expect("valid");
        assert_eq!(info.size, "tiny");
        assert!(!info.multilingual);
        assert_eq!(info.weights, "f16");
        assert_eq!(info.tensors, 1);
    }

    #[test]
    fn garbage_truncation_and_emptiness_are_refused_in_words() {
        let err = check_bytes(b"").unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let err = check_bytes(&[0x42; 4096]).unwrap_err();
        assert!(err.contains("bad magic"), "{err}");
        let full = model(384 * 4, &[]);
        let err = check_bytes(&full[..full.len() - 10]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let err = check_bytes(&full[..100]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        // Trailing bytes that are not a tensor header.
        let err = check_bytes(&model(384 * 4, &[1, 2, 3])).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn a_header_with_huge_sizes_is_refused_before_anything_is_allocated() {
        let mut b = model(384 * 4, &[]);
        // n_vocab = 2^30: whisper.cpp would size its tables by it.
        b[4..8].copy_from_slice(&(1i32 << 30).to_le_bytes());
        let err = check_bytes(&b).unwrap_err();
        assert!(err.contains("not a Whisper model"), "{err}");
        let mut b = model(384 * 4, &[]);
        // The mel filter count.
        b[48..52].copy_from_slice(&i32::MAX.to_le_bytes());
        let err = check_bytes(&b).unwrap_err();
        assert!(err.contains("mel filters"), "{err}");
    }

    #[test]
    fn unknown_weight_types_are_refused() {
        let mut b = model(384 * 4, &[]);
        b[44..48].copy_from_slice(&99i32.to_le_bytes());
        assert!(check_bytes(&b).unwrap_err().contains("weight type"));
    }
}
