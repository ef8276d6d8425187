"""The fault rehearsal driven by scripts/chaos (read its header for what it does).

Every wait is bounded in time; every process started here is stopped in `Rig.stop_all`, also on
errors and on SIGINT/SIGTERM.
"""
import json, math, os, random, re, signal, socket, sqlite3, subprocess, sys, threading, time, urllib.request
from collections import defaultdict

BIN, WORK = os.environ["BIN"], os.environ["WORK"]
SEED = int(os.environ.get("SEED", "1"))
DURATION = float(os.environ.get("DURATION", "120"))
MACHINES = int(os.environ.get("CHAOS_MACHINES", "10"))
RATE = int(os.environ.get("CHAOS_RATE", "1000"))
PHASE_S = float(os.environ.get("CHAOS_PHASE_S", "6"))
COMMIT_EVERY = int(os.environ.get("CHAOS_COMMIT_EVERY", "200"))
COMMIT_INTERVAL_MS = int(os.environ.get("CHAOS_COMMIT_INTERVAL_MS", "20"))
TICK_MS = 10  # the MQTT loop's tick when idle (IngestService: "ticks every ~10 ms"); under load it ticks after every read
MAX_BYTES = os.environ.get("CHAOS_MAX_BYTES", "1MiB")
KINDS = ["kafka-outages", "request-errors", "leader-moves", "broker-down", "sigterm", "sigkill",
         "mosquitto-restart", "mosquitto-backpressure", "disk-full", "damaged-journal"]
# After the DURATION-bounded phases, kafka-outages phases go on until this many outages were applied (0: no more).
OUTAGES = int(os.environ.get("CHAOS_OUTAGES", "0"))
# Likewise for mosquitto restarts (restart and backpressure phases, alternating) and gateway SIGTERMs.
RESTARTS = int(os.environ.get("CHAOS_RESTARTS", "0"))
SIGTERMS = int(os.environ.get("CHAOS_SIGTERMS", "0"))
# The publishing rate of the disk-full phases (0: as fast as mosquitto takes them).
DISK_RATE = int(os.environ.get("CHAOS_DISK_RATE", str(RATE)))
# The journal.min-free-bytes of the disk-full phases, on their 2 MiB tmpfs.
DISK_RESERVE = os.environ.get("CHAOS_DISK_RESERVE", "512KiB")
# How the damaged-journal phases damage the journal (seeded choice among these).
DAMAGES = [k for k in os.environ.get("CHAOS_DAMAGES", "truncated,truncated-at-a-page,damaged-page,damaged-wal,foreign-sqlite,not-sqlite").split(",") if k]
# What the gateway must print for each (docs/durability.md), after "journal PATH is ".
DAMAGE_TEXT = {"truncated": "was truncated", "truncated-at-a-page": "was truncated: its header says",
               "damaged-page": "a page of it is damaged", "damaged-wal": "its WAL is damaged: frame",
               "foreign-sqlite": "not a forewarn journal: it holds", "not-sqlite": "it is not an SQLite database"}
if os.environ.get("CHAOS_PHASES"):
    KINDS = [k for k in os.environ["CHAOS_PHASES"].split(",") if k]
# Which produce errors the request-error phases inject (CHAOS_ERROR_KINDS, comma-separated).
ERROR_KINDS = [k for k in os.environ.get("CHAOS_ERROR_KINDS", "not-leader,timed-out,not-enough-replicas,leader-not-available").split(",") if k]
PARTITIONS, BROKERS = int(os.environ.get("CHAOS_PARTITIONS", "8")), 3
rng = random.Random(SEED)
FAULTS = defaultdict(int)  # fault name -> how many were applied


def log(msg):
    print("chaos: %s %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close(); return True
    except OSError:
        return False


def wait_for(cond, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond(): return True
        time.sleep(step)
    return cond()


def integrity(path):
    """PRAGMA integrity_check of the journal, read-only, while no gateway has it open."""
    if not os.path.exists(path): return "missing"
    try:
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
        try:
            rows = con.execute("PRAGMA integrity_check").fetchall()
        finally:
            con.close()
        return ";".join(r[0] for r in rows)
    except sqlite3.Error as e:
        return "error: %s" % e


KCAT_FORMAT = "%p\t%o\t%k\t%h\t%s\n"


def tail_path(p):
    return os.path.join(WORK, "readings-live-%d.tsv" % p)


def started(p):
    """Records every child's pid in WORK/pids (the test suite checks that none outlives the run)."""
    with open(os.path.join(WORK, "pids"), "a") as f: f.write("%d\n" % p.pid)
    return p


class Rig:
    def __init__(self):
        self.mqtt_port, self.http_port = free_port(), free_port()
        self.state = os.path.join(WORK, "state")
        self.journal = os.path.join(self.state, "journal.sqlite")
        self.ctl = os.path.join(WORK, "kafka.ctl")
        self.kafka = self.mosq = self.gw = None
        self.gw_starts = 0
        self.stops = []  # (phase, how, integrity)

    # --- dev-kafka ---
    def start_kafka(self):
        out = open(os.path.join(WORK, "dev-kafka.out"), "w")
        self.kafka = started(subprocess.Popen([BIN, "dev-kafka", "--brokers", str(BROKERS), "--partitions", str(PARTITIONS),
                                       "--control", self.ctl], stdout=out, stderr=open(os.path.join(WORK, "dev-kafka.log"), "w")))
        path = os.path.join(WORK, "dev-kafka.out")
        if not wait_for(lambda: os.path.getsize(path) > 0, 20):
            raise SystemExit("chaos: dev-kafka did not print its address")
        self.bootstrap = open(path).readline().strip()
        r = subprocess.run(["kcat", "-L", "-b", self.bootstrap, "-m", "10"], capture_output=True, timeout=30)
        if r.returncode != 0: raise SystemExit("chaos: kcat cannot read metadata from dev-kafka: %s" % r.stderr[-300:])
        self.ctl_fd = os.open(self.ctl, os.O_WRONLY)
        # Count the run as it arrives: the mock keeps ~5 MB per partition and trims the oldest
        # message sets, so consumers from the start see what a read at the end no longer can.
        # One kcat per partition, each started again from the offset after the last one it wrote
        # when it exits (kcat ends when every broker is down), until `stop_tail`.
        self.tail_stop = threading.Event()
        self.tail_lock = threading.Lock()
        self.tails = {}
        self.tail_next = {p: 0 for p in range(PARTITIONS)}
        self.tail_pos = {p: 0 for p in range(PARTITIONS)}
        for p in range(PARTITIONS): open(tail_path(p), "w").close()
        def supervise():
            while not self.tail_stop.is_set():
                with self.tail_lock:
                    if self.tail_stop.is_set(): break
                    for p in range(PARTITIONS):
                        t = self.tails.get(p)
                        if t is not None and t.poll() is None: continue
                        self.advance_tail(p)
                        self.tails[p] = started(subprocess.Popen(
                            ["kcat", "-C", "-b", self.bootstrap, "-t", "forewarn.readings", "-p", str(p), "-o", str(self.tail_next[p]),
                             "-u", "-q", "-f", KCAT_FORMAT], stdout=open(tail_path(p), "a"), stderr=subprocess.DEVNULL))
                self.tail_stop.wait(0.5)
        self.tail_thread = threading.Thread(target=supervise, daemon=True)
        self.tail_thread.start()

    def advance_tail(self, p):
        """Reads partition p's new complete lines: the next offset to ask for, and the highest seen."""
        with open(tail_path(p), "rb") as f:
            f.seek(self.tail_pos[p])
            data = f.read()
        end = data.rfind(b"\n") + 1
        for line in data[:end].split(b"\n"):
            fields = line.split(b"\t", 2)
            if len(fields) == 3 and fields[1].isdigit(): self.tail_next[p] = max(self.tail_next[p], int(fields[1]) + 1)
        self.tail_pos[p] += end

    def tail_caught_up(self, ends):
        with self.tail_lock:
            for p in range(PARTITIONS): self.advance_tail(p)
            return all(self.tail_next.get(p, 0) > o for p, o in ends.items())

    def stop_tail(self):
        if not hasattr(self, "tail_stop"): return
        self.tail_stop.set()
        self.tail_thread.join(5)
        with self.tail_lock:
            for t in self.tails.values():
                if t.poll() is None:
                    t.terminate()
                    try: t.wait(10)
                    except subprocess.TimeoutExpired: t.kill(); t.wait()

    def kafka_cmd(self, line):
        os.write(self.ctl_fd, (line + "\n").encode())

    # --- mosquitto ---
    def start_mosquitto(self):
        pdir = os.path.join(WORK, "mosquitto")
        os.makedirs(pdir, exist_ok=True)
        if os.geteuid() == 0:
            import pwd
            try:
                u = pwd.getpwnam("mosquitto"); os.chown(pdir, u.pw_uid, u.pw_gid)
                # mosquitto drops root: it must be able to reach its directory too (mktemp -d
                # makes the work directory 0700, and then every save failed with EACCES).
                os.chmod(WORK, os.stat(WORK).st_mode | 0o011)
            except KeyError:
                pass
        conf = os.path.join(WORK, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n"
                    "max_queued_messages 1000000\nmax_inflight_messages 1000\nlog_dest stderr\n" % (self.mqtt_port, pdir))
        self.mosq = started(subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                             stderr=open(os.path.join(WORK, "mosquitto.log"), "a")))
        if not wait_for(lambda: port_open(self.mqtt_port), 10):
            raise SystemExit("chaos: mosquitto did not listen on %d" % self.mqtt_port)

    def restart_mosquitto(self, down_s):
        t = time.monotonic()
        self.mosq.send_signal(signal.SIGTERM)
        try:
            self.mosq.wait(20)
        except subprocess.TimeoutExpired:
            log("mosquitto did not stop in 20 s after SIGTERM; SIGKILL (its queue since the last save is lost)")
            self.mosq.kill(); self.mosq.wait(); FAULTS["mosquitto SIGKILLed after a 20 s SIGTERM timeout"] += 1
        log("mosquitto stopped in %.2f s (exit %s)" % (time.monotonic() - t, self.mosq.returncode))
        time.sleep(down_s)
        t = time.monotonic()
        self.start_mosquitto()
        log("mosquitto listening again after %.2f s" % (time.monotonic() - t))

    # --- gateway ---
    def gateway_args(self, sets=()):
        args = [BIN, "gateway", "--mqtt", "mqtt://127.0.0.1:%d" % self.mqtt_port, "--kafka", self.bootstrap,
                "--state-dir", self.state, "--http", "127.0.0.1:%d" % self.http_port,
                "--set", "gateway.id=chaos", "--set", "journal.commit-every=%d" % COMMIT_EVERY,
                "--set", "journal.commit-interval=%dms" % COMMIT_INTERVAL_MS, "--set", "journal.max-bytes=%s" % MAX_BYTES,
                "--set", "journal.min-free-bytes=64KiB"]
        for kv in os.environ.get("CHAOS_GATEWAY_SET", "").split() + list(sets):
            args += ["--set", kv]
        return args

    def start_gateway(self, sets=()):
        """Starts the gateway and waits until it is subscribed. Returns the path of its log."""
        self.gw_starts += 1
        log_path = os.path.join(WORK, "gateway.%d.log" % self.gw_starts)
        self.gw = started(subprocess.Popen(self.gateway_args(sets), stdout=subprocess.DEVNULL, stderr=open(log_path, "w")))
        if not wait_for(lambda: self.health().get("mqtt", {}).get("subscribed") is True or self.gw.poll() is not None, 30, 0.1) \
                or self.gw.poll() is not None:
            raise SystemExit("chaos: the gateway did not become ready (log %s)" % log_path)
        return log_path

    def start_gateway_expecting_refusal(self, timeout=30):
        """Starts the gateway over a journal that must be refused: (exit status or None, stderr)."""
        self.gw_starts += 1
        log_path = os.path.join(WORK, "gateway.%d.log" % self.gw_starts)
        p = started(subprocess.Popen(self.gateway_args(), stdout=subprocess.DEVNULL, stderr=open(log_path, "w")))
        try:
            status = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            try: p.wait(30)
            except subprocess.TimeoutExpired: p.kill(); p.wait()
            status = None
        return status, open(log_path, errors="replace").read()

    def stop_gateway(self, phase, how):
        if how == "sigkill":
            self.gw.kill()
        else:
            self.gw.send_signal(signal.SIGTERM)
        try:
            self.gw.wait(60)
        except subprocess.TimeoutExpired:
            log("gateway did not stop in 60 s after SIGTERM; SIGKILL"); self.gw.kill(); self.gw.wait(); how += "(timeout)"
        result = integrity(self.journal)
        self.stops.append((phase, how, result))
        log("gateway %s (exit %s); journal integrity_check: %s" % (how, self.gw.returncode, result))
        return result

    def health(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.http_port, timeout=1) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try: return json.loads(e.read())
            except Exception: return {}
        except Exception:
            return {}

    def metric(self, name):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.http_port, timeout=1) as r:
                for line in r.read().decode().splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == name: return float(parts[1])
        except Exception:
            pass
        return None

    def settle(self, timeout=90):
        """Waits until the gateway has journaled and forwarded everything (journal empty, intake
        unchanged for 1 s, subscribed, no backpressure). Bounded; says so when it gives up."""
        end = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < end:
            h = self.health(); depth = self.metric("forewarn_gateway_journal_readings")
            seen = self.metric("forewarn_gateway_readings_in_total")
            if seen != last: last, since = seen, time.monotonic()
            if depth == 0 and h.get("mqtt", {}).get("subscribed") and not h.get("backpressure") and time.monotonic() - since >= 1.0:
                return True
            time.sleep(0.2)
        log("not settled after %d s (journal %s, health %s)" % (timeout, self.metric("forewarn_gateway_journal_readings"), self.health()))
        return False

    def stop_all(self):
        self.stop_tail()
        for p in (self.gw, self.mosq, self.kafka):
            if p is None or p.poll() is not None: continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill(); p.wait()


def publisher(rig, site, n, rate):
    cmd = [os.path.join(WORK, "publisher"), "-p", str(rig.mqtt_port), "-n", str(n), "-m", str(MACHINES), "-s", site,
           "-r", str(rate), "-w", "500", "-T", str(int(n / max(rate, 1) + 180)), "-i", "chaos-pub-" + site, "-c", "-q"]
    return started(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))


def finish_publisher(p, site):
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill(); out, err = p.communicate()
    m = re.search(r"published (\d+) acknowledged (\d+)", out or "")
    r = re.search(r"rate=([0-9.]+)", err or "")
    if p.returncode != 0: log("%s: publisher exit %s: %s" % (site, p.returncode, (err or "").strip()[-300:]))
    return {"exit": p.returncode, "published": int(m.group(1)) if m else 0, "acked": int(m.group(2)) if m else 0,
            "rate": float(r.group(1)) if r else float("nan")}


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0: time.sleep(d)


# Extra checks of a phase beyond the reconciliation: site -> (ok, text). Skipped phases: site -> reason.
CHECKS, SKIPPED = {}, {}


def disk_full_phase(rig, site, n):
    """The state directory on a 2 MiB tmpfs; Kafka down while publishing fast until intake stops for
    the disk, then Kafka up. Target: intake paused for disk-low, and 0 lost."""
    disk = os.path.join(WORK, "disk-%s" % site)
    os.makedirs(disk, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", disk], capture_output=True, text=True)
    if r.returncode != 0:
        SKIPPED[site] = "mount -t tmpfs not permitted (%s)" % ((r.stderr or "").strip() or "exit %d" % r.returncode)
        log("%s: skipped: %s" % (site, SKIPPED[site]))
        return {"exit": 0, "published": 0, "acked": 0, "rate": float("nan"), "n": 0}, ["skipped: " + SKIPPED[site]]
    faults, saved = [], (rig.state, rig.journal)
    try:
        rig.stop_gateway(site, "sigterm")
        rig.state = os.path.join(disk, "state"); rig.journal = os.path.join(rig.state, "journal.sqlite")
        # A reserve the 2 MiB disk can hold, and a journal bound the disk reaches first (as GatewayDiskFullTests).
        rig.start_gateway(sets=["journal.max-bytes=64MiB", "journal.min-free-bytes=%s" % DISK_RESERVE])
        rig.kafka_cmd("down"); faults.append("2 MiB tmpfs, kafka down"); FAULTS["Kafka outages"] += 1
        n = max(n * 2, 20000) // MACHINES * MACHINES
        p = publisher(rig, site, n, DISK_RATE)
        t = time.monotonic()
        paused = wait_for(lambda: "disk-low" in rig.health().get("backpressure_reasons", []), 120, 0.05)
        h = rig.health()
        faults.append("intake paused for disk-low after %.1f s (reasons %s, %s journaled)" % (
            time.monotonic() - t, ",".join(h.get("backpressure_reasons", [])), "%d" % (rig.metric("forewarn_gateway_journal_readings") or 0))
            if paused else "intake NOT paused for the disk within 120 s")
        FAULTS["disk-full pauses"] += 1 if paused else 0
        time.sleep(rng.uniform(0.5, 2.0))
        rig.kafka_cmd("up")
        pub = finish_publisher(p, site); pub["n"] = n
        rig.settle(180)
        failures = rig.metric("forewarn_gateway_journal_write_failures_total")
        rig.stop_gateway(site, "sigterm")
        CHECKS[site] = (paused, "intake paused for disk-low" if paused else "intake never paused for the disk")
        if failures: faults.append("%d failed journal write(s) (kept in memory and written again)" % failures)
        return pub, faults
    finally:
        rig.state, rig.journal = saved
        if rig.gw.poll() is None: rig.stop_gateway(site, "sigterm")
        if subprocess.run(["umount", disk], capture_output=True).returncode != 0: subprocess.run(["umount", "-l", disk])
        rig.start_gateway()


def sha(path):
    """The file's SHA-256; None when it is missing or empty (an empty WAL holds nothing, and SQLite
    may remove it when it closes the file)."""
    import hashlib
    try:
        with open(path, "rb") as f: data = f.read()
        return hashlib.sha256(data).hexdigest() if data else None
    except OSError:
        return None


def damage_journal(path, damage):
    """Damages the journal at `path` as `damage` says (as Tests/TestSupport/DamagedJournal.swift
    does). Returns the damage applied, which may differ when the WAL has too little to damage."""
    import shutil
    size = os.path.getsize(path)
    if damage == "damaged-wal":
        wal = path + "-wal"
        data = bytearray(open(wal, "rb").read()) if os.path.exists(wal) else bytearray()
        if len(data) >= 32:
            page = int.from_bytes(data[8:12], "big"); fs = 24 + page
            # Frame 0 always belongs to the current WAL; SQLite would stop there and drop the rest,
            # so it is damage when frame 1 is of the same WAL (same salts).
            if len(data) >= 32 + 2 * fs and data[32 + fs + 8:32 + fs + 16] == data[16:24]:
                for i in range(16): data[32 + 24 + 100 + i] ^= 0x5A
                open(wal, "wb").write(data)
                return damage
        damage = "damaged-page"
    wal_bytes = os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0
    if damage in ("truncated", "truncated-at-a-page", "damaged-page") and wal_bytes:
        # The gateway's exit leaves a WAL whose pages are newer than the database file's; damage to
        # a page with a newer copy in the WAL is no damage (SQLite reads the WAL's). Fold it in
        # first, as the next open would, so that the damage hits the pages that count.
        con = sqlite3.connect(path); con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall(); con.close()
        size = os.path.getsize(path)
    if damage == "truncated":
        os.truncate(path, size // 2 + 1234)
    elif damage == "truncated-at-a-page":
        os.truncate(path, size // 4096 // 2 * 4096)
    elif damage == "damaged-page":
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'entries'").fetchone()[0]
        con.close()
        with open(path, "r+b") as f:
            f.seek((root - 1) * 4096); f.write(bytes((i * 37 + 11) & 0xFF for i in range(4096)))
    elif damage == "foreign-sqlite":
        tmp = path + ".foreign"
        con = sqlite3.connect(tmp)
        con.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
        con.executemany("INSERT INTO orders(customer, total) VALUES (?, ?)", [("c%d" % i, i * 1.5) for i in range(100)])
        con.commit(); con.close()
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix): os.remove(path + suffix)
        shutil.move(tmp, path)
    elif damage == "not-sqlite":
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix): os.remove(path + suffix)
        with open(path, "w") as f: f.write("timestamp,machine,vibration\n2026-12-01T10:00:00Z,m1,1.5\n" * 200)
    return damage


def damaged_journal_phase(rig, site, n):
    """Kafka down while publishing, so the journal holds readings; the gateway stopped (SIGKILL for
    a damaged WAL, else SIGTERM), the journal copied aside and damaged, the gateway started: it must
    exit 65 naming the file and the problem, and leave the files as they were. Then the copy is put
    back (the operator's salvage), Kafka comes up, and every reading must arrive: 0 lost."""
    import shutil
    damage = rng.choice(DAMAGES)
    rig.kafka_cmd("down"); FAULTS["Kafka outages"] += 1
    p = publisher(rig, site, n, RATE)
    pub = finish_publisher(p, site); pub["n"] = n
    # Everything the gateway took is committed (commit-interval is 20 ms) before it is stopped.
    wait_for(lambda: rig.metric("forewarn_gateway_readings_in_total") is not None, 5)
    last = [None]
    def quiet():
        v = rig.metric("forewarn_gateway_readings_in_total"); same = v == last[0]; last[0] = v; return same
    wait_for(quiet, 30, 0.5)
    held = rig.metric("forewarn_gateway_journal_readings")
    rig.stop_gateway(site, "sigkill" if damage == "damaged-wal" else "sigterm")
    backup = os.path.join(WORK, "backup-%s" % site); os.makedirs(backup, exist_ok=True)
    for suffix in ("", "-wal"):
        if os.path.exists(rig.journal + suffix): shutil.copy2(rig.journal + suffix, backup)
    applied = damage_journal(rig.journal, damage)
    FAULTS["damaged journals (%s)" % applied] += 1
    before = (sha(rig.journal), sha(rig.journal + "-wal"))
    status, stderr = rig.start_gateway_expecting_refusal()
    after = (sha(rig.journal), sha(rig.journal + "-wal"))
    line = next((l for l in stderr.splitlines() if "cannot start the gateway" in l), stderr.strip()[-300:])
    named = ("journal %s is " % rig.journal) in stderr and DAMAGE_TEXT[applied] in stderr
    ok = status == 65 and named and before == after and "journal opened" not in stderr
    CHECKS[site] = (ok, "%s journal (holding %s readings): exit %s%s%s: %s" % (
        applied, "?" if held is None else "%d" % held, status, "" if named else ", the file or problem NOT named",
        "" if before == after else ", the files CHANGED", line.replace("forewarn: cannot start the gateway: ", "")[:220]))
    log("%s: %s" % (site, CHECKS[site][1]))
    # The operator's salvage: the damaged file moved aside, the copy put back.
    aside = os.path.join(WORK, "damaged-%s" % site); os.makedirs(aside, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(rig.journal + suffix): shutil.move(rig.journal + suffix, aside)
    for suffix in ("", "-wal"):
        if os.path.exists(os.path.join(backup, "journal.sqlite" + suffix)): shutil.copy2(os.path.join(backup, "journal.sqlite" + suffix), rig.state)
    rig.kafka_cmd("up")
    rig.start_gateway()
    return pub, ["%s, refused: %s" % (applied, "as documented" if ok else "NOT as documented")]


def run_phase(rig, index, kind):
    """One phase: a publisher for PHASE_S seconds and faults of one kind at seeded times."""
    site = "p%02d-%s" % (index, kind)
    n = int(RATE * PHASE_S) // MACHINES * MACHINES
    faults = []
    if kind == "disk-full":
        pub, faults = disk_full_phase(rig, site, n)
        return site, kind, pub, faults
    if kind == "damaged-journal":
        pub, faults = damaged_journal_phase(rig, site, n)
        return site, kind, pub, faults
    if kind == "mosquitto-backpressure":
        rig.kafka_cmd("down"); faults.append("kafka down")
        n = max(n * 2, 30000) // MACHINES * MACHINES
        p = publisher(rig, site, n, 0)  # fast, so the journal fills and the rest queues in mosquitto
        if wait_for(lambda: rig.health().get("backpressure") is True, 60, 0.1):
            faults.append("backpressure seen")
            time.sleep(rng.uniform(0.2, 1.5))
        else:
            faults.append("NO backpressure within 60 s")
        res_wait = wait_for(lambda: p.poll() is not None, 120, 0.1)
        down = rng.uniform(0.1, 2)
        rig.restart_mosquitto(down); FAULTS["Kafka outages"] += 1; FAULTS["mosquitto restarts under backpressure"] += 1; faults.append("mosquitto restart (%.1f s down%s)" % (down, "" if res_wait else ", publisher still running"))
        time.sleep(rng.uniform(0.2, 2)); rig.kafka_cmd("up")
        pub = finish_publisher(p, site); pub["n"] = n
        return site, kind, pub, faults
    p = publisher(rig, site, n, RATE)
    t0 = time.monotonic(); end = t0 + PHASE_S
    if kind == "kafka-outages":
        t = t0 + rng.uniform(0.1, 0.5)
        while t < end:
            d = math.exp(rng.uniform(math.log(0.1), math.log(10)))
            sleep_until(t); rig.kafka_cmd("down"); time.sleep(d); rig.kafka_cmd("up"); FAULTS["Kafka outages"] += 1
            faults.append("%.2f" % d)
            t = time.monotonic() + rng.uniform(0.05, 1.0)
        faults = ["%d outages of %s s" % (len(faults), ",".join(faults))]
    elif kind == "request-errors":
        t = t0 + rng.uniform(0.1, 0.5)
        while t < end:
            e = rng.choice(ERROR_KINDS)
            c = rng.randint(1, 30)
            sleep_until(t); rig.kafka_cmd("produce-errors %s %d" % (e, c)); FAULTS["request-error bursts"] += 1; faults.append("%s x%d" % (e, c))
            t = time.monotonic() + rng.uniform(0.1, 1.0)
    elif kind == "leader-moves":
        t = t0 + rng.uniform(0.1, 0.5)
        while t < end:
            part, b = rng.randrange(PARTITIONS), rng.randint(1, BROKERS)
            sleep_until(t); rig.kafka_cmd("leader forewarn.readings %d %d" % (part, b)); FAULTS["leader moves"] += 1; faults.append("p%d->b%d" % (part, b))
            t = time.monotonic() + rng.uniform(0.2, 1.5)
    elif kind == "broker-down":
        t = t0 + rng.uniform(0.1, 1.0)
        while t < end:
            b, d = rng.randint(1, BROKERS), rng.uniform(0.5, 5)
            sleep_until(t); rig.kafka_cmd("broker-down %d" % b); time.sleep(d); rig.kafka_cmd("broker-up %d" % b); FAULTS["one-broker outages"] += 1
            faults.append("broker %d down %.1f s" % (b, d))
            t = time.monotonic() + rng.uniform(0.2, 1.5)
    elif kind in ("sigterm", "sigkill"):
        sleep_until(t0 + rng.uniform(0.2, PHASE_S * 0.8))
        result = rig.stop_gateway(site, kind); FAULTS["gateway " + kind.upper()] += 1
        faults.append("%s at +%.2f s, integrity %s" % (kind, time.monotonic() - t0, result))
        time.sleep(rng.uniform(0.0, 1.0))
        rig.start_gateway()
    elif kind == "mosquitto-restart":
        sleep_until(t0 + rng.uniform(0.2, PHASE_S * 0.7))
        d = rng.uniform(0.1, 2)
        rig.restart_mosquitto(d); FAULTS["mosquitto restarts"] += 1; faults.append("mosquitto restart at +%.2f s, %.1f s down" % (time.monotonic() - t0 - d, d))
    pub = finish_publisher(p, site); pub["n"] = n
    return site, kind, pub, faults


def read_kafka(rig):
    """Every record of forewarn.readings: what the consumer started with dev-kafka saw as it arrived,
    and what a read from the beginning finds at the end, as one set by (partition, offset)."""
    path = os.path.join(WORK, "readings.tsv")
    with open(path, "w") as out:
        r = subprocess.run(["kcat", "-C", "-b", rig.bootstrap, "-t", "forewarn.readings", "-o", "beginning", "-e", "-q",
                            "-f", KCAT_FORMAT], stdout=out, stderr=subprocess.PIPE, timeout=300)
    if r.returncode != 0: log("kcat exited %d: %s" % (r.returncode, r.stderr[-300:]))
    # The live consumers have caught up once they hold every offset the final read ended at.
    ends = {}
    for line in open(path, encoding="utf-8", errors="replace"):
        f = line.split("\t", 2)
        if len(f) == 3 and f[0].isdigit() and f[1].isdigit(): ends[int(f[0])] = max(ends.get(int(f[0]), -1), int(f[1]))
    if hasattr(rig, "tail_stop") and not wait_for(lambda: rig.tail_caught_up(ends), 60, step=0.5):
        log("the live consumers did not catch up with the final read in 60 s")
    rig.stop_tail()
    records, bad, seen = [], 0, set()
    for source in [tail_path(p) for p in range(PARTITIONS)] + [path]:
        if not os.path.exists(source): continue
        for line in open(source, encoding="utf-8", errors="replace"):
            if source != path and not line.endswith("\n"): continue   # cut off when the consumer stopped
            parts = line.rstrip("\n").split("\t", 4)
            try:
                p, o, k, h, s = parts
                if (int(p), int(o)) in seen: continue
                v = json.loads(s)
                hdr = dict(kv.split("=", 1) for kv in h.split(",") if "=" in kv)
                records.append((int(p), int(o), hdr.get("gateway"), hdr.get("seq"), v["site"], v["machine"], v["ts"], int(v["value"])))
                seen.add((int(p), int(o)))
            except Exception:
                bad += 1
    records.sort(key=lambda r: (r[0], r[1]))
    return records, bad


def pruned_readings(phases, records):
    """The mock cluster keeps only so much per partition (librdkafka 2.0.2's mock trims the oldest
    message sets), so a long run may find a partition starting above offset 0. What it trimmed is a
    prefix of that partition, so for each machine of such a partition the readings published
    before its first delivered one count as trimmed, not lost. Returns ({(site, machine, counter)},
    {partition: first offset})."""
    first_offset, partition_of = {}, {}
    for p, o, g, q, s, m, ts, c in records:
        first_offset[p] = min(first_offset.get(p, o), o); partition_of[m] = p
    order = {site: i for i, (site, _, _, _) in enumerate(phases)}
    first = {}
    for p, o, g, q, s, m, ts, c in records:
        if s in order: first[m] = min(first.get(m, (1 << 30, 0)), (order[s], c))
    trimmed = set()
    for m, (pi, c0) in first.items():
        if first_offset.get(partition_of[m], 0) == 0: continue
        for i, (site, kind, pub, faults) in enumerate(phases[:pi + 1]):
            for c in range(pub["n"] // MACHINES if i < pi else c0):
                trimmed.add((site, m, c))
    return trimmed, first_offset


def reconcile(phases, records, rig):
    by_site = defaultdict(list)
    for r in records: by_site[r[4]].append(r)
    trimmed, first_offset = pruned_readings(phases, records)
    interval_s = COMMIT_INTERVAL_MS / 1000.0
    rows, ok_all, summary = [], True, []
    totals = defaultdict(int)
    for site, kind, pub, faults in phases:
        if site in SKIPPED:
            rows.append("SKIP %-28s %s" % (site, SKIPPED[site]))
            summary.append({"phase": site, "kind": kind, "skipped": SKIPPED[site], "published": 0, "to_publish": 0,
                            "publisher_exit": 0, "rate": 0, "delivered": 0, "duplicates": 0, "duplicates_with_new_seq": 0,
                            "lost": 0, "window": 0, "trimmed": 0, "out_of_order": 0, "integrity": [], "check": "", "check_ok": True, "ok": True})
            continue
        recs = by_site.get(site, [])
        ids = defaultdict(set)   # (machine, ts) -> {(gateway, seq)}
        copies = defaultdict(int)
        counters = defaultdict(set)
        for p, o, g, q, s, m, ts, c in recs:
            ids[(m, ts)].add((g, q)); copies[(m, ts)] += 1; counters[m].add(c)
        delivered = len(ids)
        duplicates = len(recs) - delivered
        new_seq = sum(len(v) - 1 for v in ids.values())
        expected = pub["n"] // MACHINES
        missing = {("m%03d" % (i + 1), c) for i in range(MACHINES) for c in range(expected)
                   if c not in counters.get("m%03d" % (i + 1), set())}
        pruned = sum(1 for (m, c) in missing if (site, m, c) in trimmed)
        lost = len(missing) - pruned
        # Order: per machine in partition order after de-dup by (gateway, seq), as a consumer does.
        seen, last, ooo, bad_machines = set(), {}, 0, set()
        for p, o, g, q, s, m, ts, c in recs:
            if (g, q) in seen: continue
            seen.add((g, q))
            if m in last and (c <= last[m][0] or ts <= last[m][1]): ooo += 1; bad_machines.add(m)
            last[m] = (c, ts)
        pub_ok = pub["exit"] == 0 and pub["acked"] == pub["n"]
        if kind == "sigkill":
            # The commit is due commit-interval after the group's first entry and runs on the next
            # tick of the MQTT loop (at most TICK_MS later), so a group holds up to
            # rate x (commit-interval + tick) entries, and never more than commit-every.
            rate = pub["rate"] if pub["rate"] == pub["rate"] else RATE
            window = min(COMMIT_EVERY, math.ceil(rate * (interval_s + TICK_MS / 1000.0)))
            target_ok = lost <= window
            loss_text = "lost %d (window %d = min(commit-every %d, %.0f/s x (commit-interval %d ms + tick %d ms)); %.0f/s x commit-interval alone = %d)" % (
                lost, window, COMMIT_EVERY, rate, COMMIT_INTERVAL_MS, TICK_MS, rate, math.ceil(rate * interval_s))
        else:
            target_ok = lost == 0
            loss_text = "lost %d (target 0)" % lost
        integ = [i for (ph, how, i) in rig.stops if ph == site]
        integ_ok = all(i == "ok" for i in integ)
        check_ok, check_text = CHECKS.get(site, (True, ""))
        ok = pub_ok and target_ok and ooo == 0 and new_seq == 0 and integ_ok and check_ok
        ok_all &= ok
        summary.append({"phase": site, "kind": kind, "published": pub["acked"], "to_publish": pub["n"],
                        "publisher_exit": pub["exit"], "rate": pub["rate"], "delivered": delivered,
                        "duplicates": duplicates, "duplicates_with_new_seq": new_seq, "lost": lost,
                        "window": window if kind == "sigkill" else 0, "trimmed": pruned, "out_of_order": ooo, "integrity": integ,
                        "check": check_text, "check_ok": check_ok, "ok": ok})
        for k, v in (("published", pub["acked"]), ("delivered", delivered), ("duplicates", duplicates), ("new_seq", new_seq),
                     ("lost", lost), ("ooo", ooo)):
            totals[k] += v
        totals["pruned"] += pruned
        rows.append("%-4s %-28s published %6d delivered %6d%s duplicates %5d (%s) %s, out of order %d%s%s | %s" % (
            "ok" if ok else "FAIL", site, pub["acked"], delivered,
            " (+%d trimmed by dev-kafka's retention)" % pruned if pruned else "", duplicates,
            "all same (gateway, seq)" if new_seq == 0 else "%d with a NEW seq" % new_seq,
            loss_text, ooo, " (machines %s)" % ",".join(sorted(bad_machines)) if bad_machines else "",
            ", integrity %s" % ",".join(integ) if integ else "",
            ("%s%s; " % ("" if check_ok else "CHECK FAILED: ", check_text) if check_text else "") + "; ".join(faults)[:300] + ("" if pub_ok else "; PUBLISHER: exit %s, %d of %d acked" % (pub["exit"], pub["acked"], pub["n"]))))
    trimmed_note = ""
    if totals["pruned"]:
        trimmed_note = "; dev-kafka's mock trimmed %d old readings (partition first offsets %s), not counted as lost" % (
            totals["pruned"], ",".join("%d:%d" % kv for kv in sorted(first_offset.items())))
    return rows, totals, ok_all, summary, trimmed_note


def print_issue_targets(summary, rig):
    """The targets of issue 10, each next to what this run measured."""
    ran = [p for p in summary if not p.get("skipped")]
    def of(kinds): return [p for p in ran if p["kind"] in kinds]
    nonkill = of(set(KINDS + ["kafka-outages"]) - {"sigkill"})
    lost, ooo = sum(p["lost"] for p in nonkill), sum(p["out_of_order"] for p in nonkill)
    counts = (FAULTS["Kafka outages"], FAULTS["mosquitto restarts"] + FAULTS["mosquitto restarts under backpressure"],
              FAULTS["request-error bursts"], FAULTS["gateway SIGTERM"])
    short = [name for name, have, want in zip(("outages", "broker restarts", "request-error bursts", "SIGTERMs"), counts, (100, 10, 1, 5)) if have < want]
    print("issue target: 0 lost, 0 out of order through 100 outages, 10 broker restarts, the request-error bursts and 5 SIGTERMs"
          " | measured: %d Kafka outages, %d mosquitto restarts, %d request-error bursts, %d SIGTERMs: lost %d, out of order %d%s"
          % (counts + (lost, ooo, " (fewer %s than the target names)" % ", ".join(short) if short else "")))
    kills = of({"sigkill"})
    print("issue target: SIGKILL loses at most the group-commit window | measured: %s" % (
        ", ".join("lost %d (window %d)" % (p["lost"], p["window"]) for p in kills) or "no SIGKILL phase ran"))
    disk = of({"disk-full"})
    skipped = [p["skipped"] for p in summary if p["kind"] == "disk-full" and p.get("skipped")]
    print("issue target: disk full: 0 lost | measured: %s" % (
        ", ".join("%s lost %d of %d, %s" % (p["phase"], p["lost"], p["published"], p["check"]) for p in disk)
        or ("skipped: %s" % skipped[0] if skipped else "no disk-full phase ran")))
    damaged = of({"damaged-journal"})
    print("issue target: a journal damaged between runs is refused, never started empty | measured: %s" % (
        "; ".join("%s %s, lost %d of %d" % ("ok" if p["check_ok"] else "NOT AS DOCUMENTED", p["check"][:120], p["lost"], p["published"])
                  for p in damaged) or "no damaged-journal phase ran"))
    kill_stops = [(a, i) for (a, how, i) in rig.stops if how.startswith("sigkill")]
    print("issue target: integrity ok after every kill | measured: ok after %d of %d SIGKILLs (%d of %d stops in all)" % (
        sum(1 for _, i in kill_stops if i == "ok"), len(kill_stops), sum(1 for (_, _, i) in rig.stops if i == "ok"), len(rig.stops)))


def main():
    # A parent may hand us blocked signals (the Swift test runner blocks SIGTERM): children inherit
    # the mask across exec, and a mosquitto with SIGTERM blocked never saves its queue and stops.
    blocked = signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if blocked: log("unblocked signals inherited from the parent: %s" % sorted(int(s) for s in blocked))
    rig = Rig()
    def on_signal(signum, frame): raise SystemExit(130)
    signal.signal(signal.SIGTERM, on_signal); signal.signal(signal.SIGINT, on_signal)
    ok = False
    try:
        rig.start_kafka(); rig.start_mosquitto(); rig.start_gateway()
        log("seed %d, duration %.0f s; mosquitto 127.0.0.1:%d, dev-kafka %s, gateway http 127.0.0.1:%d; work %s"
            % (SEED, DURATION, rig.mqtt_port, rig.bootstrap, rig.http_port, WORK))
        # Every kind once (in seeded order) while time allows, then seeded random kinds.
        order = KINDS[:]; rng.shuffle(order)
        phases, t_start, i = [], time.monotonic(), 0
        while time.monotonic() - t_start < DURATION:
            kind = order[i] if i < len(order) else rng.choice(KINDS)
            i += 1
            log("phase %d: %s" % (i, kind))
            result = run_phase(rig, i, kind)
            phases.append(result)
            log("phase %d: %s: publisher %s; %s" % (i, kind, result[2], "; ".join(result[3])[:200]))
            rig.settle()
        # CHAOS_OUTAGES: more kafka-outages phases until that many outages were applied (each phase adds a few).
        while OUTAGES and FAULTS["Kafka outages"] < OUTAGES and i < 10000:
            i += 1
            log("phase %d: kafka-outages (%d of %d outages so far)" % (i, FAULTS["Kafka outages"], OUTAGES))
            result = run_phase(rig, i, "kafka-outages")
            phases.append(result)
            rig.settle()
        # CHAOS_RESTARTS, CHAOS_SIGTERMS: the same for mosquitto restarts and gateway SIGTERMs.
        def restarts(): return FAULTS["mosquitto restarts"] + FAULTS["mosquitto restarts under backpressure"]
        for target, count, kinds in ((RESTARTS, restarts, ["mosquitto-restart", "mosquitto-backpressure"]),
                                     (SIGTERMS, lambda: FAULTS["gateway SIGTERM"], ["sigterm"])):
            j = 0
            while target and count() < target and i < 10000:
                i += 1
                kind = kinds[j % len(kinds)]; j += 1
                log("phase %d: %s (%d of %d so far)" % (i, kind, count(), target))
                result = run_phase(rig, i, kind)
                phases.append(result)
                rig.settle()
        log("draining")
        rig.kafka_cmd("up")
        for b in range(1, BROKERS + 1): rig.kafka_cmd("broker-up %d" % b)
        rig.settle(120)
        rig.stop_gateway("final", "sigterm")
        records, bad = read_kafka(rig)
        rows, totals, ok, summary, trimmed_note = reconcile(phases, records, rig)
        with open(os.path.join(WORK, "summary.json"), "w") as f:
            json.dump({"phases": summary, "stops": [{"phase": a, "how": b, "integrity": c} for a, b, c in rig.stops],
                       "unparsable": bad, "faults": FAULTS, "commit_every": COMMIT_EVERY, "commit_interval_ms": COMMIT_INTERVAL_MS}, f, indent=1)
        print("chaos: seed %d, %d phases in %.0f s, %d machines at %d readings/s, journal.commit-every=%d commit-interval=%dms"
              % (SEED, len(phases), time.monotonic() - t_start, MACHINES, RATE, COMMIT_EVERY, COMMIT_INTERVAL_MS))
        for r in rows: print(r)
        final = [i for (ph, how, i) in rig.stops if ph == "final"]
        integ_all = all(i == "ok" for (_, _, i) in rig.stops)
        ok = ok and integ_all and bad == 0
        kills = sum(1 for (_, how, _) in rig.stops if how == "sigkill")
        print("%s total: published %d delivered %d duplicates %d (%s) lost %d out of order %d; %d gateway stops "
              "(%d SIGKILL), integrity ok after %d of %d (final: %s); %d unparsable record(s)%s" % (
                  "PASS" if ok else "FAIL", totals["published"], totals["delivered"], totals["duplicates"],
                  "all same (gateway, seq)" if totals["new_seq"] == 0 else "%d with a NEW seq" % totals["new_seq"],
                  totals["lost"], totals["ooo"], len(rig.stops), kills,
                  sum(1 for (_, _, i) in rig.stops if i == "ok"), len(rig.stops), ",".join(final), bad, trimmed_note))
        print("faults applied: %s" % ", ".join("%d %s" % (v, k) for k, v in sorted(FAULTS.items())))
        print("targets: 0 lost and 0 out of order outside SIGKILL phases; every duplicate carries its first copy's "
              "(gateway, seq); SIGKILL loss <= the group-commit window per kill; integrity_check ok after every stop")
        print_issue_targets(summary, rig)
        sys.stdout.flush()
    finally:
        rig.stop_all()
        if ok and not os.environ.get("CHAOS_KEEP") and not os.environ.get("CHAOS_WORK"):
            subprocess.run(["rm", "-rf", WORK])
        else:
            log("logs and data are in %s" % WORK)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
