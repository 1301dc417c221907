# Stress for the native data path (run by datapath.test.ts): threads read and write files of a dmemfs mount
# with O_DIRECT (so every request reaches the daemon) while another truncates, unlinks and recreates them,
# injects memory failures and soft-offlines their dpages. Every 4 KiB block carries its file, index and
# version, so any read can be checked on its own: zeros, or this file's block at this index, never another
# file's or another index's bytes; never the bytes of a block poisoned before the read began. Between
# rounds, with everything still, every file is read whole and compared with the model.
# Usage: python3 datapath-stress.py MOUNT SECONDS SEED. Prints one JSON line; exits 1 on the first mismatch.
import hashlib, json, mmap, os, random, struct, sys, threading, time

MNT, SECONDS, SEED = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
BS = 4096
SLOTS = 4
MAX_BLOCKS = 192
CHUNK = 16  # blocks; each chunk has one writer, so that a write of a whole chunk races no other writer
HEADER = struct.Struct('<QQQ')  # file uid, block index, version

failures = []
counts = {'reads': 0, 'writes': 0, 'eio': 0, 'truncates': 0, 'unlinks': 0, 'mces': 0, 'soft_offlines': 0, 'checks': 0}
count_lock = threading.Lock()
uid_seq = [0]
version_seq = [0]


def fail(msg):
    failures.append(msg)
    raise SystemExit


def body(uid, index):
    seed = hashlib.blake2b(struct.pack('<QQ', uid, index), digest_size=64).digest()
    return (seed * (BS // 64))[HEADER.size:]


def block(uid, index, version):
    return HEADER.pack(uid, index, version) + body(uid, index)


def aligned(n):
    return mmap.mmap(-1, n)


class Slot:
    def __init__(self, i):
        self.path = os.path.join(MNT, 'f%d' % i)
        self.mutex = threading.Lock()
        self.epoch = 0  # odd while a truncate or unlink runs
        self.uid = 0
        self.size = 0  # certain size
        self.max_size = 0  # largest size a racing write may have left
        self.written = {}  # index -> version of the last clean write
        self.maybe = {}  # index -> set of versions a racing write may have left (or nothing)
        self.poisoned = set()  # indexes poisoned (reads must fail)
        self.ever_poisoned = set()  # (uid, index): a read may have failed with EIO
        self.create()

    def create(self):
        uid_seq[0] += 1
        self.uid = uid_seq[0]
        fd = os.open(self.path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
        os.close(fd)
        self.size = self.max_size = 0
        self.written, self.maybe, self.poisoned = {}, {}, set()

    def open(self, flags):
        with self.mutex:
            return os.open(self.path, flags | os.O_DIRECT), self.uid


slots = [Slot(i) for i in range(SLOTS)]


ZERO16 = bytes(16)


def check_block(slot, uid, index, data, where):
    """A block read while others write: zeros, this file's block at this index, or (a read racing the
    block's first write) a mix of the two in 16-byte pieces, as stores land. Never another file's bytes."""
    if data == bytes(len(data)):
        return
    u, i, v = HEADER.unpack_from(data)
    if u not in (0, uid) or i not in (0, index):
        fail('%s: %s block %d holds file %d block %d (version %d), expected file %d' % (where, slot.path, index, u, i, v, uid))
    if v > version_seq[0]:
        fail('%s: %s block %d: version %d never written' % (where, slot.path, index, v))
    want = body(uid, index)
    got = data[HEADER.size:]
    if got == want:
        return
    for k in range(0, len(got), 16):
        piece = got[k:k + 16]
        if piece != want[k:k + 16] and piece != ZERO16[:len(piece)]:
            fail('%s: %s block %d: bytes %d.. are neither this block\'s nor zero' % (where, slot.path, index, HEADER.size + k))


def reader(rng, stop):
    buf = aligned(32 * BS)
    while not stop.is_set():
        slot = rng.choice(slots)
        fd, uid = slot.open(os.O_RDONLY)
        try:
            for _ in range(8):
                # 16 and 32 blocks: reads the native path answers straight from the pool to the device.
                n = rng.choice([1, 1, 2, 4, 16, 32])
                # Mostly inside the size: past it, the kernel answers without asking the daemon.
                blocks = slot.size // BS
                index = rng.randrange(0, blocks) if blocks and rng.random() < 0.9 else rng.randrange(0, MAX_BLOCKS)
                with slot.mutex:
                    bad = [b for b in range(index, index + n) if b in slot.poisoned] if slot.uid == uid else []
                    epoch = slot.epoch
                view = memoryview(buf)[:n * BS]
                try:
                    got = os.preadv(fd, [view], index * BS)
                except OSError as e:
                    if e.errno != 5:
                        raise
                    if not any((uid, b) in slot.ever_poisoned for b in range(index, index + n)):
                        with slot.mutex:
                            if not any((uid, b) in slot.ever_poisoned for b in range(index, index + n)):
                                fail('read %s blocks %d+%d: EIO without poison' % (slot.path, index, n))
                    with count_lock:
                        counts['eio'] += 1
                    continue
                # (A truncate meanwhile may have dropped the poisoned block and a write brought it back.)
                if bad and got > (bad[0] - index) * BS and epoch == slot.epoch:
                    fail('read %s blocks %d+%d returned %d bytes: block %d was poisoned before the read' %
                         (slot.path, index, n, got, bad[0]))
                for k in range(got // BS):
                    check_block(slot, uid, index + k, bytes(buf[k * BS:(k + 1) * BS]), 'read')
                with count_lock:
                    counts['reads'] += 1
        finally:
            os.close(fd)


def writer(me, nwriters, rng, stop):
    buf = aligned(CHUNK * BS)
    while not stop.is_set():
        slot = rng.choice(slots)
        fd, uid = slot.open(os.O_WRONLY)
        try:
            for _ in range(8):
                # Mostly overwrites inside the size (the native path), sometimes past it (TypeScript's).
                limit = max(1, min(MAX_BLOCKS, slot.size // BS + (2 if rng.random() < 0.2 else 0)))
                index = rng.randrange(0, limit)
                chunk = index // CHUNK
                chunk += (me - chunk) % nwriters
                # Now and then a whole chunk: a WRITE of 64 KiB, which libfuse reads by splice.
                n = CHUNK if rng.random() < 0.25 else 1
                index = chunk * CHUNK + (0 if n == CHUNK else index % CHUNK)
                if index + n > MAX_BLOCKS:
                    continue
                with slot.mutex:
                    version_seq[0] += 1
                    version = version_seq[0]
                    epoch = slot.epoch
                for k in range(n):
                    buf[k * BS:(k + 1) * BS] = block(uid, index + k, version)
                try:
                    done = os.pwritev(fd, [memoryview(buf)[:n * BS]], index * BS) // BS
                except OSError as e:
                    if e.errno != 5:
                        raise
                    with count_lock:
                        counts['eio'] += 1
                    # A write that met a poisoned block may have landed in some of the others.
                    record(slot, uid, range(index, index + n), version, epoch, clean=False)
                    continue
                record(slot, uid, range(index, index + done), version, epoch, clean=True)
                with count_lock:
                    counts['writes'] += 1
        finally:
            os.close(fd)


def record(slot, uid, indexes, version, epoch, clean):
    """The model's note of a write of these blocks: certain if nothing raced it, else possible."""
    with slot.mutex:
        if slot.uid != uid:
            return
        for index in indexes:
            end = (index + 1) * BS
            if clean and epoch == slot.epoch and epoch % 2 == 0:
                slot.written[index] = version
                slot.maybe.pop(index, None)
                slot.size = max(slot.size, end)
            else:
                slot.maybe.setdefault(index, set()).add(version)
            slot.max_size = max(slot.max_size, slot.size, end)


def pfn_of(slot, index):
    ino = os.stat(slot.path).st_ino
    with open(os.path.join(MNT, '.dmem', 'pfns')) as f:
        for line in f:
            if line.startswith('#'):
                continue
            i, off, pfn, frames = line.split()[:4]
            off, frames = int(off), int(frames)
            if int(i) == ino and off <= index * BS < off + frames * 4096:
                return int(pfn, 16) + (index * BS - off) // 4096
    return None


def control(name, text):
    fd = os.open(os.path.join(MNT, '.dmem', name), os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def chaos(rng, stop):
    while not stop.is_set():
        slot = rng.choice(slots)
        op = rng.random()
        if op < 0.35:
            cut = rng.randrange(0, max(1, slot.size // BS) + 1)
            with slot.mutex:
                slot.epoch += 1
                # Reads from now on may see the regrown blocks; those already running may still fail.
                slot.poisoned = {i for i in slot.poisoned if i < cut}
                # Writes recorded so far returned before the truncate began: it wipes them. Writes recorded
                # from now on may land on either side of it.
                wiped = {i: set(v) for i, v in slot.maybe.items() if i >= cut}
            os.truncate(slot.path, cut * BS)
            with slot.mutex:
                slot.epoch += 1
                for i in [i for i in slot.written if i >= cut]:
                    slot.written.pop(i)
                    slot.maybe.setdefault(i, set())  # zeros now, or a racing write that came back
                for i in [i for i in slot.maybe if i >= cut]:
                    slot.maybe[i] -= wiped.get(i, set())
                slot.size = cut * BS
            with count_lock:
                counts['truncates'] += 1
        elif op < 0.45:
            with slot.mutex:
                slot.epoch += 1
                os.unlink(slot.path)
                slot.create()
                slot.epoch += 1
            with count_lock:
                counts['unlinks'] += 1
        elif op < 0.75:
            index = rng.choice(list(slot.written) or [0])
            with slot.mutex:
                uid = slot.uid
            pfn = pfn_of(slot, index)
            if pfn is None:
                continue
            name = 'mce' if op < 0.6 else 'soft_offline'
            if name == 'mce':
                with slot.mutex:
                    slot.ever_poisoned.add((uid, index))  # a read racing the injection may fail already
            try:
                control(name, '0x%x\n' % pfn)
            except OSError:
                continue  # already poisoned or offline, or no free dpage to move to
            with slot.mutex:
                if name == 'mce' and slot.uid == uid and pfn_of(slot, index) == pfn:
                    slot.poisoned.add(index)
                elif name == 'mce':
                    # The dpage changed hands meanwhile: whatever it backs now may fail.
                    for s in slots:
                        s.ever_poisoned.update((s.uid, i) for i in range(MAX_BLOCKS))
            with count_lock:
                counts['mces' if name == 'mce' else 'soft_offlines'] += 1
        time.sleep(rng.random() * 0.01)


def check_still():
    """Everything still: each file's size and every block exactly as the model says."""
    buf = aligned(BS)
    for slot in slots:
        size = os.stat(slot.path).st_size
        if size < slot.size or size > max(slot.max_size, slot.size) or size % BS:
            fail('%s: size %d, expected %d (up to %d)' % (slot.path, size, slot.size, slot.max_size))
        found = {}
        fd = os.open(slot.path, os.O_RDONLY | os.O_DIRECT)
        try:
            for index in range(size // BS):
                try:
                    got = os.preadv(fd, [buf], index * BS)
                except OSError as e:
                    if e.errno == 5 and index in slot.poisoned:
                        continue
                    raise
                if index in slot.poisoned:
                    fail('%s block %d: read %d bytes of a poisoned block' % (slot.path, index, got))
                data = bytes(buf[:BS])
                version = None if data == bytes(BS) else HEADER.unpack_from(data)[2]
                racing = slot.maybe.get(index, set())
                if index in slot.written and data != block(slot.uid, index, slot.written[index]):
                    if version not in racing or data != block(slot.uid, index, version):
                        fail('%s block %d: expected version %d, found %r' % (slot.path, index, slot.written[index], HEADER.unpack_from(data)))
                elif index not in slot.written and version is not None:
                    if version not in racing or data != block(slot.uid, index, version):
                        fail('%s block %d: expected zeros or a racing write, found %r (file %d)' % (slot.path, index, HEADER.unpack_from(data), slot.uid))
                if version is not None:
                    found[index] = version
        finally:
            os.close(fd)
        # What was uncertain is known now.
        slot.size = slot.max_size = size
        slot.written = {i: v for i, v in slot.written.items() if i in slot.poisoned and i * BS < size}
        slot.written.update(found)
        slot.maybe = {}
    with count_lock:
        counts['checks'] += 1


def run_thread(fn, *args):
    def go():
        try:
            fn(*args)
        except SystemExit:
            pass
        except BaseException as e:  # any unexpected errno is a failure too
            failures.append('%s: %r' % (fn.__name__, e))
    t = threading.Thread(target=go)
    t.start()
    return t


deadline = time.time() + SECONDS
master = random.Random(SEED)
while time.time() < deadline and not failures:
    stop = threading.Event()
    threads = [run_thread(reader, random.Random(master.random()), stop) for _ in range(3)]
    threads += [run_thread(writer, k, 2, random.Random(master.random()), stop) for k in range(2)]
    threads.append(run_thread(chaos, random.Random(master.random()), stop))
    time.sleep(min(2.0, max(0.1, deadline - time.time())))
    stop.set()
    for t in threads:
        t.join()
    if not failures:
        try:
            check_still()
        except SystemExit:
            pass

print(json.dumps({'ok': not failures, 'failures': failures[:5], 'counts': counts}))
sys.exit(1 if failures else 0)
