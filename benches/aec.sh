#!/usr/bin/env bash
# Echo cancellation in a simulated room: the candidates behind media::echo's Canceller side by
# side on the same harness (tests/echo.rs `bench_aec`: the box's real capture and speaker chains,
# their ends on pipes, the room simulator of src/media/echo/sim.rs between them), against no
# canceller as the baseline. Prints a markdown section (scripts/bench.sh collects it).
#
#   benches/aec.sh        # release build of the echo test binary (CARGO_PROFILE_FLAG="" for debug)
#
# The room: far-end speech (espeak-ng en-us) played by the box, delayed 80 ms, a tanh
# loudspeaker saturation, a pyroomacoustics impulse response (tests/data/README.md), noise at
# -65 dBFS; a near-end talker (espeak-ng en-gb+f3). All at 16 kHz mono. Runs in real time, about
# 2.5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
flag="${CARGO_PROFILE_FLAG---release}"
cargo test $flag --quiet --features test-util --test echo --no-run 2>/dev/null
# Two tables: the candidates, then aec3 with every stage on (a blank line between them).
table="$(cargo test $flag --quiet --features test-util --test echo -- --ignored --exact bench_aec --nocapture --test-threads 1 2>/dev/null | grep '^|' | sed 's/^| aec3, every stage on/\n&/')"
cat <<MD
## Echo cancellation in a simulated room (benches/aec.sh)

The box's real audio path (the capture with its mic on a pipe, the speaker's chain with its sink
on a pipe) through the room simulator: far-end speech delayed 80 ms, a tanh loudspeaker
saturation, a pyroomacoustics room (RT60 0.3 s; tests/data/README.md), noise at -65 dBFS, and a
near-end talker, at 16 kHz mono. ERLE is the mic's energy over the box's in far-end single
talk, 6 to 10 s after the far end starts; "to 20 dB" is the time until a 0.5 s window of far-end
speech first shows 20 dB; the path change swaps the impulse response for another position in
the same room, the delay jump adds 50 ms at once. The near-end figures are the box's output
level over the near-end talker's at the mic: alone, and with the far end talking (double talk;
the residual echo counts as kept, so this flatters a canceller that leaves echo). Delay added:
how far the box's output lags the mic (best cross-correlation within ±50 ms) while the near end
talks alone, less the same with no canceller; the canceller works in place on the capture's
10 ms buffers, so any delay would be its own. CPU: all stages
(echo cancellation, noise suppression, gain control, high-pass) on 48 kHz mono, this thread's
CPU time over 5 s of audio.

$table

The second table is aec3 with every stage on, as the box runs it where a speaker plays: gain
control (AGC2) lifts the near end and what the canceller leaves alike, so its ERLE (the mic over
the box's output) counts the gain against the canceller.

Targets of issue 17, with aec3: ERLE ≥ 30 dB NS off and ≥ 40 dB NS on, 20 dB within 3 s (also
after a path change), near end alone ≥ −1 dB, double talk ≤ 6 dB lost, delay added ≤ 20 ms,
CPU ≤ 5 % of a core.
MD
captions="$(cargo test $flag --quiet --features test-util --test echo -- --ignored --exact bench_double_talk_captions --nocapture --test-threads 1 2>/dev/null | grep -E '^(\||- )')"
cat <<MD

### Double talk: the near-end talker's live captions (issue 17)

The same room and harness, noise suppression on; the near-end talker's passage (espeak-ng
en-gb+f3, about 10 s) alone, then with the far end talking over all of it (from 3 s before),
with aec3 and with no canceller, and the far end alone. The room's mic is captioned as the live
captions decode it (\`worker::transcribe_pcm_linear\`, tiny.en q8_0, greedy): the VAD cuts the
processed mic, and each utterance is decoded from the canceller's linear output as the
captions' tap takes it (\`PcmChunk::from_sample\`) unless the linear filter took more than 6 dB
off it (\`transcribe::linear\`). The same run's processed mic alone is the captions before the
linear output. WER against the passage.

$captions

Targets of issue 17: the near-end talker's captions in double talk within 10 points of the same
talker with no far end playing; none of the far end's words in the room's captions.
MD
