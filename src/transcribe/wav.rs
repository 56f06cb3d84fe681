//! Reads a WAV file of 16 kHz mono audio, as `sox` and `espeak-ng` piped through it write them:
//! the post-transcription of a file, the tests and the bench use it.

use std::path::Path;

use super::SAMPLE_RATE;

/// The samples of a 16 kHz mono WAV (16-bit PCM or 32-bit float) at `path`, in -1..1.
pub fn read_wav(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_wav(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The samples of the WAV file in `bytes`; see [`read_wav`].
pub fn parse_wav(bytes: &[u8]) -> Result<Vec<f32>, String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a WAV file".into());
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut pos = 12;
    let mut format = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        let body = pos + 8;
        // A streamed WAV (sox to a pipe) leaves the data size at its maximum: read to the end.
        let end = body.saturating_add(size).min(bytes.len());
        if id == b"fmt " {
            if end - body < 16 {
                return Err("short fmt chunk".into());
            }
            let (tag, channels, rate, bits) = (
                u16_at(body),
                u16_at(body + 2),
                u32_at(body + 4),
                u16_at(body + 14),
            );
            // 0xFFFE (extensible) carries the real tag in its sub-format; sox writes it for float.
            let tag = if tag == 0xfffe && end - body >= 26 {
                u16_at(body + 24)
            } else {
                tag
            };
            if channels != 1 || rate != SAMPLE_RATE {
                return Err(format!(
                    "{channels} channel(s) at {rate} Hz; expected mono at {SAMPLE_RATE} Hz \
                     (sox IN -r 16000 -c 1 OUT converts)"
                ));
            }
            format = Some((tag, bits));
        } else if id == b"data" {
            let data = &bytes[body..end];
            return match format {
                Some((1, 16)) => Ok(data
                    .chunks_exact(2)
                    .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                    .collect()),
                Some((3, 32)) => Ok(data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()),
                Some((tag, bits)) => Err(format!(
                    "sample format {tag}/{bits} bits; expected 16-bit PCM or 32-bit float"
                )),
                None => Err("data before the fmt chunk".into()),
            };
        }
        pos = body.saturating_add(size + (size & 1));
    }
    Err("no data chunk".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(channels: u16, rate: u32, samples: &[i16]) -> Vec<u8> {
        let mut b = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        b.extend(16u32.to_le_bytes());
        b.extend(1u16.to_le_bytes());
        b.extend(channels.to_le_bytes());
        b.extend(rate.to_le_bytes());
        b.extend((rate * 2).to_le_bytes());
        b.extend(2u16.to_le_bytes());
        b.extend(16u16.to_le_bytes());
        b.extend(b"data");
        b.extend((samples.len() as u32 * 2).to_le_bytes());
        for s in samples {
            b.extend(s.to_le_bytes());
        }
        b
    }

    #[test]
    fn reads_16_bit_mono_and_refuses_the_rest_in_words() {
        let pcm = parse_wav(&wav(1, 16_000, &[0, 16384, -32768])).expect("valid");
        assert_eq!(pcm, vec![0.0, 0.5, -1.0]);
        assert!(parse_wav(&wav(2, 16_000, &[0, 0]))
            .unwrap_err()
            .contains("mono"));
        assert!(parse_wav(&wav(1, 44_100, &[0]))
            .unwrap_err()
            .contains("16000"));
        assert!(parse_wav(b"garbage garbage")
            .unwrap_err()
            .contains("not a WAV"));
    }
}
