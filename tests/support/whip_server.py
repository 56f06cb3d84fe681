#!/usr/bin/env python3
"""A small WHIP and WHEP server for the tests, on aiortc (PyPI) and aiohttp: a WebRTC stack that
is not the box's. It takes WHIP publishes (RFC 9725) and serves them to WHEP players
(draft-ietf-wish-whep), decoding what it receives so a test can ask what arrived.

  POST   /whip/NAME        publish NAME (application/sdp offer -> 201, Location, ETag, answer)
  POST   /whep/NAME        watch NAME (404 while nothing publishes it)
  DELETE /resource/ID      end a session
  GET    /stats/NAME       {"video_frames", "width", "height", "audio_dbfs", "publishing"}
  GET    /log              every request: [{"t", "method", "path", "auth"}]
  Faults, for the bad-input tests:
  POST /status/CODE        answers CODE
  POST /notsdp             201 with an HTML body
  POST /badlocation        201 with a Location that is no URL
  POST /hang               never answers
  POST /redirect/NAME      307 to /whip/NAME (the token must follow)

--token T requires "Authorization: Bearer T" on /whip, /whep and /redirect.
--publish NAME publishes a test pattern and a 440 Hz tone to its own /whip/NAME over WHIP, as a
second participant would; POST /demo/NAME starts such a publisher later, DELETE /demo/NAME ends
it (and its WHIP session). The chosen port is written to --port-file once it listens.
"""

import argparse
import asyncio
import fractions
import json
import math
import time
import uuid

import numpy as np
from aiohttp import ClientSession, web
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.contrib.media import MediaRelay
from av import AudioFrame, VideoFrame

relay = MediaRelay()
streams = {}  # name -> {"tracks": [...], "stats": {...}}
sessions = {}  # resource id -> pc
log = []
args = None


def stats_for(name):
    s = streams.setdefault(name, {"tracks": [], "stats": {}})
    s["stats"].setdefault("video_frames", 0)
    s["stats"].setdefault("audio_dbfs", None)
    s["stats"].setdefault("width", 0)
    s["stats"].setdefault("height", 0)
    return s


async def consume(name, track):
    """Decodes a published track (through the relay, so players share it) and counts it."""
    st = stats_for(name)["stats"]
    sub = relay.subscribe(track)
    try:
        while True:
            frame = await sub.recv()
            if track.kind == "video":
                st["video_frames"] += 1
                st["width"], st["height"] = frame.width, frame.height
            else:
                pcm = frame.to_ndarray().astype(np.float64) / 32768.0
                rms = math.sqrt(float(np.mean(pcm * pcm))) if pcm.size else 0.0
                st["audio_dbfs"] = 20 * math.log10(rms) if rms > 1e-9 else -120.0
    except Exception:
        pass


def authorized(request):
    if not args.token:
        return True
    return request.headers.get("Authorization") == f"Bearer {args.token}"


@web.middleware
async def record(request, handler):
    log.append(
        {
            "t": time.time(),
            "method": request.method,
            "path": request.path,
            "auth": "Authorization" in request.headers,
        }
    )
    return await handler(request)


def created(request, pc, answer_sdp, publishes=None):
    rid = uuid.uuid4().hex
    sessions[rid] = (pc, publishes)
    return web.Response(
        status=201,
        text=answer_sdp,
        content_type="application/sdp",
        headers={"Location": f"/resource/{rid}", "ETag": f'"{rid}"'},
    )


async def read_offer(request):
    if request.content_type != "application/sdp":
        raise web.HTTPUnsupportedMediaType(text="expected application/sdp")
    return await request.text()


async def whip(request):
    if not authorized(request):
        raise web.HTTPUnauthorized(text="bad token")
    name = request.match_info["name"]
    offer = await read_offer(request)
    pc = RTCPeerConnection()
    s = stats_for(name)
    s["tracks"] = []

    @pc.on("track")
    def on_track(track):
        s["tracks"].append(track)
        asyncio.ensure_future(consume(name, track))

    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    return created(request, pc, pc.localDescription.sdp, publishes=name)


async def whep(request):
    if not authorized(request):
        raise web.HTTPUnauthorized(text="bad token")
    name = request.match_info["name"]
    offer = await read_offer(request)
    s = streams.get(name)
    if not s or not s["tracks"]:
        raise web.HTTPNotFound(text=f"nothing publishes {name}")
    pc = RTCPeerConnection()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    for track in s["tracks"]:
        pc.addTrack(relay.subscribe(track))
    await pc.setLocalDescription(await pc.createAnswer())
    return created(request, pc, pc.localDescription.sdp)


async def delete(request):
    found = sessions.pop(request.match_info["id"], None)
    if found is None:
        raise web.HTTPNotFound()
    pc, publishes = found
    if publishes and publishes in streams:
        streams[publishes]["tracks"] = []
    await pc.close()
    return web.Response(status=200)


demos = {}


async def demo_start(request):
    name = request.match_info["name"]
    demos[name] = await publish_demo(request.app["port"], name)
    return web.Response(status=201)


async def demo_stop(request):
    name = request.match_info["name"]
    pc = demos.pop(name, None)
    if pc is None:
        raise web.HTTPNotFound()
    await pc.close()
    for rid, (spc, publishes) in list(sessions.items()):
        if publishes == name:
            sessions.pop(rid)
            await spc.close()
    if name in streams:
        streams[name]["tracks"] = []
    return web.Response(status=200)


async def stats(request):
    s = stats_for(request.match_info["name"])
    out = dict(s["stats"])
    out["publishing"] = bool(s["tracks"])
    return web.json_response(out)


async def get_log(request):
    return web.json_response(log)


async def status(request):
    code = int(request.match_info["code"])
    return web.Response(status=code, text=f"test status {code}")


async def notsdp(request):
    return web.Response(
        status=201,
        text="<html>not sdp</html>",
        content_type="text/html",
        headers={"Location": "/resource/x"},
    )


async def badlocation(request):
    return web.Response(
        status=201,
        text="v=0\r\n",
        content_type="application/sdp",
        headers={"Location": "http://[::zz]:x/"},
    )


async def hang(request):
    await asyncio.sleep(3600)
    return web.Response(status=500)


async def redirect(request):
    if not authorized(request):
        raise web.HTTPUnauthorized(text="bad token")
    return web.Response(
        status=307, headers={"Location": f"/whip/{request.match_info['name']}"}
    )


class Pattern(VideoStreamTrack):
    """Moving colour bars, 320x240 at 15 fps."""

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        img = np.zeros((240, 320, 3), np.uint8)
        shift = (pts // 6000) % 320
        for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]):
            img[:, (i * 80 + shift) % 320 : (i * 80 + shift) % 320 + 80] = colour
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class Tone(MediaStreamTrack):
    """A 440 Hz tone at -10 dBFS, 20 ms frames of 48 kHz mono."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.n = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.time()
        due = self.start + self.n * 0.02
        await asyncio.sleep(max(0, due - time.time()))
        t = (np.arange(960) + self.n * 960) / 48000
        pcm = (0.316 * 32767 * np.sin(2 * math.pi * 440 * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.n * 960
        frame.time_base = fractions.Fraction(1, 48000)
        self.n += 1
        return frame


async def publish_demo(port, name):
    pc = RTCPeerConnection()
    pc.addTrack(Tone())
    pc.addTrack(Pattern())
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    async with ClientSession() as http:
        async with http.post(
            f"http://127.0.0.1:{port}/whip/{name}",
            data=pc.localDescription.sdp,
            headers=headers,
        ) as r:
            assert r.status == 201, r.status
            answer = await r.text()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


async def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    p.add_argument("--token")
    p.add_argument("--publish")
    args = p.parse_args()
    app = web.Application(middlewares=[record])
    app.add_routes(
        [
            web.post("/whip/{name}", whip),
            web.post("/whep/{name}", whep),
            web.delete("/resource/{id}", delete),
            web.get("/stats/{name}", stats),
            web.get("/log", get_log),
            web.post("/status/{code}", status),
            web.post("/notsdp", notsdp),
            web.post("/badlocation", badlocation),
            web.post("/hang", hang),
            web.post("/redirect/{name}", redirect),
            web.post("/demo/{name}", demo_start),
            web.delete("/demo/{name}", demo_stop),
        ]
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    app["port"] = port
    if args.publish:
        demos[args.publish] = await publish_demo(port, args.publish)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    import os

    os.rename(args.port_file + ".tmp", args.port_file)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
