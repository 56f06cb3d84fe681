//! Fragmented MP4 (CMAF) for low-latency HLS, built with `mp4-atom`: the init segment (`ftyp` +
//! `moov`) and one `moof` + `mdat` per part.
//!
//! Video is H.264 in `avc1` (parameter sets in `avcC`, samples length-prefixed), on a 90 kHz
//! timescale; audio is AAC-LC in `mp4a`, on its sample rate.

use mp4_atom::{
    esds, Audio, Avc1, Avcc, Dinf, Dref, Encode, Esds, FourCC, Ftyp, Hdlr, Mdat, Mdhd, Mdia, Mfhd,
    Minf, Moof, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd,
    Traf, Trak, Trex, Trun, TrunEntry, TrunSamples, Url, Visual, Vmhd,
};

/// The video track's timescale (ticks per second), as MPEG's clocks.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// A sample that does not depend on others (a keyframe, any audio frame).
const SYNC: u32 = 0x0200_0000;
/// A sample that depends on others and is not a sync sample.
const NON_SYNC: u32 = 0x0101_0000;

/// The video track's setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// The sequence parameter set (one NAL unit, no start code).
    pub sps: Vec<u8>,
    /// The picture parameter set.
    pub pps: Vec<u8>,
}

/// The audio track's setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// Samples per second, also the track's timescale.
    pub rate: u32,
    pub channels: u16,
    /// The AAC AudioSpecificConfig (the caps' `codec_data`).
    pub config: Vec<u8>,
}

/// One sample of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Its bytes: length-prefixed NAL units, or one AAC frame.
    pub data: Vec<u8>,
    /// Its duration in track ticks.
    pub duration: u32,
    /// Presentation minus decode time, in track ticks.
    pub cts: i32,
    /// True for a sync sample.
    pub sync: bool,
}

/// One track's samples in a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<'a> {
    pub track_id: u32,
    /// The decode time of its first sample, in track ticks.
    pub decode_time: u64,
    /// Its samples, in decode order.
    pub samples: &'a [Sample],
}

/// Encoding failed (mp4-atom refused a value: never expected for what this module builds).
#[derive(Debug, thiserror::Error)]
#[error("fMP4: {0}")]
pub struct Fmp4Error(String);

fn enc<A: Encode>(atom: &A, out: &mut Vec<u8>) -> Result<(), Fmp4Error> {
    atom.encode(out).map_err(|e| Fmp4Error(e.to_string()))
}

fn dinf() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![Url {
                location: String::new(),
            }
            .into()],
        },
    }
}

fn stbl(codec: mp4_atom::Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stts: Stts::default(),
        stsc: Stsc::default(),
        stsz: Stsz::default(),
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

/// A track's kind, for its handler and media header.
enum Handler {
    Video,
    Audio,
}

/// One track of the init segment: `tkhd`, then the media box for `codec` at `timescale`.
fn trak(tkhd: Tkhd, timescale: u32, handler: Handler, codec: mp4_atom::Codec) -> Trak {
    let (fourcc, name, vmhd, smhd) = match handler {
        Handler::Video => (b"vide", "roombox video", Some(Vmhd::default()), None),
        Handler::Audio => (b"soun", "roombox audio", None, Some(Smhd::default())),
    };
    Trak {
        tkhd,
        mdia: Mdia {
            mdhd: Mdhd {
                timescale,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(fourcc),
                name: name.into(),
            },
            minf: Minf {
                vmhd,
                smhd,
                dinf: dinf(),
                stbl: stbl(codec),
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

/// A track's fragment defaults: its first sample description.
fn track_defaults(track_id: u32) -> Trex {
    Trex {
        track_id,
        default_sample_description_index: 1,
        ..Default::default()
    }
}

/// The init segment for the tracks present: video is track 1 when there is video, audio the
/// next.
pub fn init(video: Option<&VideoTrack>, audio: Option<&AudioTrack>) -> Result<Vec<u8>, Fmp4Error> {
    let mut traks = Vec::new();
    let mut trex = Vec::new();
    let mut id = 0;
    if let Some(v) = video {
        id += 1;
        let sps = &v.sps;
        if sps.len() < 4 {
            return Err(Fmp4Error("the SPS is too short".into()));
        }
        let avc1 = Avc1 {
            visual: Visual {
                width: v.width,
                height: v.height,
                ..Default::default()
            },
            avcc: Avcc {
                configuration_version: 1,
                avc_profile_indication: sps[1],
                profile_compatibility: sps[2],
                avc_level_indication: sps[3],
                length_size: 4,
                sequence_parameter_sets: vec![v.sps.clone()],
                picture_parameter_sets: vec![v.pps.clone()],
                // High profiles carry chroma format and bit depths: 4:2:0, 8 bits, as encoded.
                ext: matches!(sps[1], 100 | 110 | 122 | 244).then(mp4_atom::AvccExt::default),
            },
            ..Default::default()
        };
        traks.push(trak(
            Tkhd {
                track_id: id,
                enabled: true,
                in_movie: true,
                width: v.width.into(),
                height: v.height.into(),
                ..Default::default()
            },
            VIDEO_TIMESCALE,
            Handler::Video,
            avc1.into(),
        ));
        trex.push(track_defaults(id));
    }
    if let Some(a) = audio {
        id += 1;
        let c = &a.config;
        if c.len() < 2 {
            return Err(Fmp4Error("the AAC config is too short".into()));
        }
        let mp4a = Mp4a {
            audio: Audio {
                data_reference_index: 1,
                channel_count: a.channels,
                sample_size: 16,
                sample_rate: (a.rate.min(u16::MAX as u32) as u16).into(),
            },
            esds: Esds {
                es_desc: esds::EsDescriptor {
                    es_id: id as u16,
                    dec_config: esds::DecoderConfig {
                        // MPEG-4 audio, an audio stream.
                        object_type_indication: 0x40,
                        stream_type: 5,
                        up_stream: 0,
                        dec_specific: Some(esds::DecoderSpecific {
                            profile: c[0] >> 3,
                            freq_index: ((c[0] & 0x07) << 1) | (c[1] >> 7),
                            chan_conf: (c[1] >> 3) & 0x0f,
                            raw: c.clone(),
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            btrt: None,
            taic: None,
        };
        traks.push(trak(
            Tkhd {
                track_id: id,
                alternate_group: 1,
                enabled: true,
                in_movie: true,
                volume: 1.into(),
                ..Default::default()
            },
            a.rate,
            Handler::Audio,
            mp4a.into(),
        ));
        trex.push(track_defaults(id));
    }
    if traks.is_empty() {
        return Err(Fmp4Error("no track".into()));
    }
    let mut out = Vec::new();
    enc(
        &Ftyp {
            major_brand: FourCC::new(b"iso6"),
            minor_version: 0,
            compatible_brands: vec![
                FourCC::new(b"iso6"),
                FourCC::new(b"cmfc"),
                FourCC::new(b"mp41"),
            ],
        },
        &mut out,
    )?;
    enc(
        &Moov {
            mvhd: Mvhd {
                timescale: 1000,
                rate: 1.into(),
                volume: 1.into(),
                next_track_id: id + 1,
                ..Default::default()
            },
            mvex: Some(Mvex {
                trex,
                ..Default::default()
            }),
            trak: traks,
            ..Default::default()
        },
        &mut out,
    )?;
    Ok(out)
}

/// One fragment (`moof` + `mdat`) holding `runs`, numbered `sequence`. Runs without samples are
/// left out.
pub fn fragment(sequence: u32, runs: &[Run]) -> Result<Vec<u8>, Fmp4Error> {
    let runs: Vec<&Run> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let moof = |offsets: &[i32]| Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: runs
            .iter()
            .zip(offsets)
            .map(|(r, &offset)| Traf {
                tfhd: Tfhd {
                    track_id: r.track_id,
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: r.decode_time,
                }),
                trun: vec![Trun {
                    data_offset: Some(offset),
                    samples: TrunSamples::Explicit(
                        r.samples
                            .iter()
                            .map(|s| TrunEntry {
                                duration: Some(s.duration),
                                size: Some(s.data.len() as u32),
                                flags: Some(if s.sync { SYNC } else { NON_SYNC }),
                                cts: Some(s.cts as i64),
                            })
                            .collect(),
                    ),
                }],
                ..Default::default()
            })
            .collect(),
    };
    // The data offsets count from the moof's start, so its size comes first: encode once with
    // zeros (the fields are fixed-size), then with the offsets.
    let mut probe = Vec::new();
    enc(&moof(&vec![0; runs.len()]), &mut probe)?;
    let mut offsets = Vec::with_capacity(runs.len());
    let mut at = probe.len() + 8;
    let mut data = Vec::new();
    for r in &runs {
        offsets.push(at as i32);
        for s in r.samples {
            at += s.data.len();
            data.extend_from_slice(&s.data);
        }
    }
    let mut out = Vec::with_capacity(probe.len() + 8 + data.len());
    enc(&moof(&offsets), &mut out)?;
    enc(&Mdat { data }, &mut out)?;
    Ok(out)
}

/// NAL units of an H.264 byte-stream access unit (start codes removed).
pub fn nal_units(au: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(au.len(), |&n| n - 3);
        // A four-byte start code leaves its leading zero on the unit before.
        while end > s && au[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        if end > s {
            units.push(&au[s..end]);
        }
    }
    units
}

/// What one byte-stream access unit becomes: its picture NAL units length-prefixed, and the
/// parameter sets it carried (SPS, PPS).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Converted {
    /// Length-prefixed NAL units, without parameter sets or delimiters.
    pub data: Vec<u8>,
    /// The SPS, when the unit carried one.
    pub sps: Option<Vec<u8>>,
    /// The PPS, when the unit carried one.
    pub pps: Option<Vec<u8>>,
}

/// Converts a byte-stream access unit for `avc1`: SPS and PPS go to the init segment, access
/// unit delimiters are dropped.
pub fn convert(au: &[u8]) -> Converted {
    let mut c = Converted::default();
    for nal in nal_units(au) {
        match nal[0] & 0x1f {
            7 => c.sps = Some(nal.to_vec()),
            8 => c.pps = Some(nal.to_vec()),
            9 => {}
            _ => {
                c.data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                c.data.extend_from_slice(nal);
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::Decode;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xec];
    const PPS: &[u8] = &[0x68, 0xce, 0x0f, 0xc8];

    #[test]
    fn an_access_unit_splits_into_parameter_sets_and_length_prefixed_slices() {
        let mut au = vec![0, 0, 0, 1, 0x09, 0xf0];
        au.extend_from_slice(&[0, 0, 0, 1]);
        au.extend_from_slice(SPS);
        au.extend_from_slice(&[0, 0, 1]);
        au.extend_from_slice(PPS);
        au.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00]);
        let c = convert(&au);
        assert_eq!(c.sps.as_deref(), Some(SPS));
        assert_eq!(c.pps.as_deref(), Some(PPS));
        // The slice keeps its own trailing zero byte only when no start code follows.
        assert_eq!(c.data, vec![0, 0, 0, 4, 0x65, 0x88, 0x84, 0x00]);
    }

    #[test]
    fn the_init_segment_decodes_back_with_both_tracks() {
        let v = VideoTrack {
            width: 1280,
            height: 720,
            sps: SPS.to_vec(),
            pps: PPS.to_vec(),
        };
        let a = AudioTrack {
            rate: 48000,
            channels: 1,
            config: vec![0x11, 0x88],
        };
        let bytes = init(Some(&v), Some(&a)).expect("init");
        let buf = &mut std::io::Cursor::new(&bytes);
        let ftyp = Ftyp::decode(buf).expect("ftyp");
        assert_eq!(ftyp.major_brand, FourCC::new(b"iso6"));
        let moov = Moov::decode(buf).expect("moov");
        assert_eq!(moov.trak.len(), 2);
        assert_eq!(moov.trak[0].mdia.mdhd.timescale, VIDEO_TIMESCALE);
        assert_eq!(moov.trak[1].mdia.mdhd.timescale, 48000);
        assert_eq!(moov.mvex.expect("mvex").trex.len(), 2);
        assert!(init(None, None).is_err());
    }

    #[test]
    fn a_fragments_offsets_point_at_each_tracks_bytes() {
        let v = [
            Sample {
                data: vec![1; 10],
                duration: 3000,
                cts: 0,
                sync: true,
            },
            Sample {
                data: vec![2; 5],
                duration: 3000,
                cts: 0,
                sync: false,
            },
        ];
        let a = [Sample {
            data: vec![3; 7],
            duration: 1024,
            cts: 0,
            sync: true,
        }];
        let bytes = fragment(
            9,
            &[
                Run {
                    track_id: 1,
                    decode_time: 6000,
                    samples: &v,
                },
                Run {
                    track_id: 2,
                    decode_time: 2048,
                    samples: &a,
                },
            ],
        )
        .expect("fragment");
        let buf = &mut std::io::Cursor::new(&bytes);
        let moof = Moof::decode(buf).expect("moof");
        assert_eq!(moof.mfhd.sequence_number, 9);
        let off = |t: usize| moof.traf[t].trun[0].data_offset.expect("offset") as usize;
        assert_eq!(&bytes[off(0)..off(0) + 10], &[1; 10]);
        assert_eq!(&bytes[off(0) + 10..off(0) + 15], &[2; 5]);
        assert_eq!(&bytes[off(1)..off(1) + 7], &[3; 7]);
        assert_eq!(
            moof.traf[1].tfdt.as_ref().map(|t| t.base_media_decode_time),
            Some(2048)
        );
        assert_eq!(off(1) + 7, bytes.len());
    }
}
