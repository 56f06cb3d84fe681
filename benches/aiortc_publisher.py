#!/usr/bin/env python3
"""Baseline publisher for the room CPU benchmark (tests/room.rs `bench_publish_cpu`).

Joins a Janus VideoRoom over Janus's WebSocket API with aiortc (the WebRTC stack under
VideoSDK's Python SDK) and publishes a synthetic 1280x720@30 video encoded as H.264 (aiortc's
libx264 encoder through PyAV; codec preference forced to H.264 so both sides do the same work)
and a 440 Hz tone as Opus. The video is FRAME_FILE (one raw I420 1280x720 frame: the bench
writes the box's own `videotestsrc pattern=smpte` frame there) scrolled left by SCROLL pixels
every frame, as `videotestsrc horizontal-speed=SCROLL` does on the box; without FRAME_FILE,
plain colour bars. Prints `connected` on stdout once the PeerConnection is up, then publishes
until killed, printing `sent FRAMES VIDEO_BYTES SECONDS` (totals so far, and CLOCK_MONOTONIC) every second.

Creates ROOM_ID (H.264 + Opus, like the box's rooms, video capped at BITRATE bit/s through
Janus's REMB; 0: no cap) if it does not exist.

Usage: aiortc_publisher.py WS_URL ROOM_ID [FRAME_FILE [SCROLL [BITRATE]]]
Needs: pip install aiortc websockets
"""

import asyncio
import fractions
import json
import random
import string
import sys
import time

import numpy as np
import websockets
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from av import AudioFrame, VideoFrame

W, H, FPS = 1280, 720, 30


def bars():
    """Seven vertical colour bars in yuv420p, one frame reused (the content is static)."""
    ys = [180, 168, 145, 133, 63, 51, 28]
    us = [128, 44, 156, 72, 184, 100, 212]
    vs = [128, 142, 44, 58, 198, 212, 114]
    y = np.zeros((H, W), np.uint8)
    u = np.zeros((H // 2, W // 2), np.uint8)
    v = np.zeros((H // 2, W // 2), np.uint8)
    for i in range(7):
        x0, x1 = i * W // 7, (i + 1) * W // 7
        y[:, x0:x1] = ys[i]
        u[:, x0 // 2 : x1 // 2] = us[i]
        v[:, x0 // 2 : x1 // 2] = vs[i]
    return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(H * 3 // 2, W)


def load(path):
    """One raw I420 1280x720 frame from `path`, as the (H*3/2, W) array PyAV wants."""
    raw = np.fromfile(path, np.uint8)
    if raw.size != W * H * 3 // 2:
        raise SystemExit(f"{path}: {raw.size} bytes, expected one I420 {W}x{H} frame")
    return raw.reshape(H * 3 // 2, W)


def scrolled(img, px):
    """`img` (I420 planes stacked) with every plane rotated left by `px` luma pixels."""
    if px == 0:
        return img
    y = img[:H].reshape(H, W)
    uv = img[H:].reshape(H, W // 2)  # U then V, each H/2 rows of W/2
    y = np.roll(y, -px, axis=1)
    uv = np.roll(uv, -(px // 2), axis=1)
    return np.concatenate([y.reshape(-1), uv.reshape(-1)]).reshape(H * 3 // 2, W)


class Bars(VideoStreamTrack):
    """1280x720 at 30 fps (VideoStreamTrack paces frames at 90 kHz)."""

    def __init__(self, img, scroll):
        super().__init__()
        self.img = img
        self.scroll = scroll
        self.frames = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        img = scrolled(self.img, (self.frames * self.scroll) % W)
        self.frames += 1
        frame = VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        return frame


class Tone(MediaStreamTrack):
    """A 440 Hz sine, 48 kHz mono, 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.rate = 48000
        self.samples = 960
        self.pts = 0
        self.start = None

    async def recv(self):
        loop = asyncio.get_event_loop()
        if self.start is None:
            self.start = loop.time()
        wait = self.start + self.pts / self.rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(self.samples) + self.pts) / self.rate
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self.pts += self.samples
        return frame


def tx():
    return "".join(random.choices(string.ascii_letters, k=12))


class Janus:
    """Just enough of the Janus WebSocket API: requests matched to replies by transaction."""

    def __init__(self, ws):
        self.ws = ws
        self.waiting = {}
        self.session = None

    async def pump(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if msg.get("janus") == "ack":
                continue
            fut = self.waiting.pop(msg.get("transaction"), None)
            if fut and not fut.done():
                fut.set_result(msg)

    async def request(self, body):
        t = tx()
        body["transaction"] = t
        if self.session is not None:
            body["session_id"] = self.session
        fut = asyncio.get_event_loop().create_future()
        self.waiting[t] = fut
        await self.ws.send(json.dumps(body))
        msg = await asyncio.wait_for(fut, 30)
        if msg.get("janus") == "error":
            raise RuntimeError(f"janus: {msg}")
        return msg

    async def keepalive(self):
        while True:
            await asyncio.sleep(20)
            await self.ws.send(
                json.dumps({"janus": "keepalive", "session_id": self.session, "transaction": tx()})
            )


async def main(url, room, img, scroll, bitrate):
    async with websockets.connect(url, subprotocols=["janus-protocol"]) as ws:
        j = Janus(ws)
        asyncio.ensure_future(j.pump())
        j.session = (await j.request({"janus": "create"}))["data"]["id"]
        asyncio.ensure_future(j.keepalive())
        handle = (
            await j.request({"janus": "attach", "plugin": "janus.plugin.videoroom"})
        )["data"]["id"]
        room_id = int(room) if room.isdigit() else room
        # A room of its own (the box would otherwise subscribe to this stream and decode it),
        # with the box's codecs. "Already exists" (427) is fine.
        created = await j.request(
            {
                "janus": "message",
                "handle_id": handle,
                "body": {
                    "request": "create",
                    "room": room_id,
                    "publishers": 6,
                    "audiocodec": "opus",
                    "videocodec": "h264",
                    "h264_profile": "42e01f",
                    "bitrate": bitrate,
                },
            }
        )
        data = created["plugindata"]["data"]
        if data.get("videoroom") != "created" and data.get("error_code") != 427:
            raise RuntimeError(f"create failed: {data}")
        joined = await j.request(
            {
                "janus": "message",
                "handle_id": handle,
                "body": {"request": "join", "ptype": "publisher", "room": room_id, "display": "aiortc"},
            }
        )
        data = joined["plugindata"]["data"]
        if data.get("videoroom") != "joined":
            raise RuntimeError(f"join failed: {data}")

        pc = RTCPeerConnection()
        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def _():
            if pc.connectionState == "connected":
                connected.set()

        pc.addTrack(Tone())
        video = Bars(img, scroll)
        vt = pc.addTransceiver(video, direction="sendonly")
        h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        vt.setCodecPreferences(h264)
        await pc.setLocalDescription(await pc.createOffer())
        reply = await j.request(
            {
                "janus": "message",
                "handle_id": handle,
                "body": {"request": "publish", "audio": True, "video": True},
                "jsep": {"type": "offer", "sdp": pc.localDescription.sdp},
            }
        )
        jsep = reply.get("jsep")
        if not jsep:
            raise RuntimeError(f"no answer: {reply}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type=jsep["type"]))
        await asyncio.wait_for(connected.wait(), 30)
        print("connected", flush=True)
        # Progress for the benchmark: frames handed to the encoder and RTP bytes sent so far.
        while True:
            await asyncio.sleep(1)
            sent = 0
            for st in (await vt.sender.getStats()).values():
                if st.type == "outbound-rtp":
                    sent = st.bytesSent
            print(f"sent {video.frames} {sent} {time.monotonic():.3f}", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 2:
        raise SystemExit(__doc__)
    img = load(args[2]) if len(args) > 2 else bars()
    scroll = int(args[3]) if len(args) > 3 else 0
    bitrate = int(args[4]) if len(args) > 4 else 0
    asyncio.run(main(args[0], args[1], img, scroll, bitrate))
