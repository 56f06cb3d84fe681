//! 10 ms frames out of buffers of any size, and S16LE ↔ f32 (-1..1) conversion.

/// Every canceller here works on 10 ms frames, as WebRTC's audio processing does.
pub const FRAME_MS: u32 = 10;

/// Collects mono S16LE bytes into whole frames of `len` samples; a buffer's tail waits for the
/// next one, so buffer sizes need not be multiples of a frame.
#[derive(Debug)]
pub struct Framer {
    frame: Vec<f32>,
    filled: usize,
    /// An odd byte left over from the last buffer.
    odd: Option<u8>,
}

impl Framer {
    /// Frames of `len` samples.
    pub fn new(len: usize) -> Framer {
        Framer {
            frame: vec![0.0; len.max(1)],
            filled: 0,
            odd: None,
        }
    }

    /// Takes `bytes` and calls `each` with every frame that fills up.
    pub fn push_s16(&mut self, bytes: &[u8], mut each: impl FnMut(&[f32])) {
        let mut rest = bytes;
        if let (Some(lo), Some((&hi, tail))) = (self.odd, rest.split_first()) {
            self.odd = None;
            self.put(i16::from_le_bytes([lo, hi]), &mut each);
            rest = tail;
        }
        let mut pairs = rest.chunks_exact(2);
        for b in &mut pairs {
            self.put(i16::from_le_bytes([b[0], b[1]]), &mut each);
        }
        if let [b] = pairs.remainder() {
            self.odd = Some(*b);
        }
    }

    fn put(&mut self, s: i16, each: &mut impl FnMut(&[f32])) {
        self.frame[self.filled] = f32::from(s) / 32768.0;
        self.filled += 1;
        if self.filled == self.frame.len() {
            each(&self.frame);
            self.filled = 0;
        }
    }
}

/// S16LE bytes to samples in -1..1; `out` is as long as `bytes` has samples.
pub fn s16_to_f32(bytes: &[u8], out: &mut [f32]) {
    for (b, o) in bytes.chunks_exact(2).zip(out.iter_mut()) {
        *o = f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0;
    }
}

/// Samples in -1..1 to S16LE bytes, clipped.
pub fn f32_to_s16(samples: &[f32], out: &mut [u8]) {
    for (s, o) in samples.iter().zip(out.chunks_exact_mut(2)) {
        let v = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        o.copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_fill_across_buffers_of_any_size_even_split_samples() {
        let samples: Vec<i16> = (0..25).map(|i| i * 100 - 1000).collect();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut framer = Framer::new(10);
        let mut got = Vec::new();
        for piece in bytes.chunks(7) {
            framer.push_s16(piece, |f| got.push(f.to_vec()));
        }
        assert_eq!(got.len(), 2, "25 samples are two whole frames of 10");
        let flat: Vec<i16> = got
            .concat()
            .iter()
            .map(|v| (v * 32768.0).round() as i16)
            .collect();
        assert_eq!(flat, samples[..20]);
    }

    #[test]
    fn conversion_round_trips_and_clips() {
        let bytes: Vec<u8> = [i16::MIN, -1, 0, 1, i16::MAX]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let mut f = [0f32; 5];
        s16_to_f32(&bytes, &mut f);
        let mut back = [0u8; 10];
        f32_to_s16(&f, &mut back);
        assert_eq!(back.to_vec(), bytes);
        f32_to_s16(&[2.0, -2.0], &mut back[..4]);
        assert_eq!(
            back[..4],
            [i16::MAX.to_le_bytes(), i16::MIN.to_le_bytes()].concat()[..]
        );
    }
}
