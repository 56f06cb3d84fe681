# Makes tests/data/room-ir-{a,b}-16k.f32, the room simulator's impulse responses (see README.md).
import numpy as np, pyroomacoustics as pra, sys
fs = 16000
rt60 = 0.3
room_dim = [5.0, 4.0, 2.8]
e_absorption, max_order = pra.inverse_sabine(rt60, room_dim)
def ir(src, mic):
    room = pra.ShoeBox(room_dim, fs=fs, materials=pra.Material(e_absorption), max_order=max_order)
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    h = np.asarray(room.rir[0][0], dtype=np.float64)
    # drop the propagation delay before the direct path (the simulator sets the delay itself)
    start = max(int(np.argmax(np.abs(h))) - 16, 0)
    h = h[start:start + int(0.25 * fs)]
    return (h / np.max(np.abs(h))).astype('<f4')
a = ir([2.5, 1.0, 1.2], [2.5, 1.6, 1.0])   # speaker 0.6 m from the mic, on a table
b = ir([1.0, 3.0, 1.5], [2.6, 1.5, 1.0])   # the same room, speaker moved: the path change
a.tofile(sys.argv[1] + '/room-ir-a-16k.f32')
b.tofile(sys.argv[1] + '/room-ir-b-16k.f32')
print(len(a), len(b), float(np.sum(a**2)), float(np.sum(b**2)), pra.__version__)
