# A random-operation tester in the manner of fsx: one file on the mount and a model of its bytes; random
# writes, reads, truncates, fallocate (mode 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE) and reads and writes through
# a shared mapping, each checked against the model. Stops after OPS operations or SECONDS seconds and prints
# "ok N" (N operations done), or the first mismatch and exits 1.
import ctypes, mmap, os, random, sys, time

path, ops, seconds, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
KEEP_SIZE, PUNCH_HOLE = 1, 2
SPAN = 1 << 20
MAX_LEN = 3 * 4096 + 123
rnd = random.Random(seed)
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
model = bytearray()

def fail(what):
    print('mismatch after op %d: %s' % (done, what))
    sys.exit(1)

def falloc(mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        fail('fallocate(%d, %d, %d): errno %d' % (mode, off, length, ctypes.get_errno()))

def check(off, length):
    got = os.pread(fd, length, off)
    want = bytes(model[off:off + length])
    if got != want:
        i = next(k for k in range(min(len(got), len(want)) + 1) if k >= len(got) or k >= len(want) or got[k] != want[k])
        fail('read %d+%d differs at byte %d (size %d)' % (off, length, off + i, len(model)))

done = 0
end = time.monotonic() + seconds
while done < ops and time.monotonic() < end:
    off = rnd.randrange(SPAN)
    length = 1 + rnd.randrange(MAX_LEN)
    op = rnd.randrange(8)
    if op == 0:
        data = bytes([rnd.randrange(1, 256)]) * length
        os.pwrite(fd, data, off)
        if off > len(model): model.extend(bytes(off - len(model)))
        model[off:off + length] = data
    elif op == 1:
        if len(model): check(rnd.randrange(len(model)), length)
    elif op == 2:
        os.ftruncate(fd, off)
        if off < len(model): del model[off:]
        else: model.extend(bytes(off - len(model)))
    elif op == 3:
        falloc(0, off, length)
        if off + length > len(model): model.extend(bytes(off + length - len(model)))
    elif op == 4:
        falloc(KEEP_SIZE, off, length)
    elif op == 5:
        falloc(PUNCH_HOLE | KEEP_SIZE, off, length)
        lo, hi = min(off, len(model)), min(off + length, len(model))
        model[lo:hi] = bytes(hi - lo)
    elif len(model) > 0:
        # Through a shared mapping of the whole file: read a range (op 6) or write one (op 7).
        m = mmap.mmap(fd, len(model))
        o = rnd.randrange(len(model))
        n = min(length, len(model) - o)
        if op == 6:
            if m[o:o + n] != model[o:o + n]: fail('mapped read %d+%d (size %d)' % (o, n, len(model)))
        else:
            data = bytes([rnd.randrange(1, 256)]) * n
            m[o:o + n] = data
            model[o:o + n] = data
        m.close()
    done += 1
    if os.fstat(fd).st_size != len(model): fail('size %d, model %d' % (os.fstat(fd).st_size, len(model)))
check(0, len(model))
os.close(fd)
print('ok %d' % done)
