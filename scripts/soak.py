"""The gateway soak driven by scripts/soak (read its header for what it does).

It reuses the rig of scripts/chaos.py (dev-kafka with a control FIFO, mosquitto, the gateway).
Every wait is bounded; every process started here is stopped at the end, also on errors.
"""
import math, os, re, signal, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos  # noqa: E402  (reads BIN, WORK and the CHAOS_* settings scripts/soak exported)
from chaos import Rig, log, started, wait_for  # noqa: E402

WORK = os.environ["WORK"]
MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
RATE = int(os.environ.get("SOAK_RATE", "10000"))
MACHINES = int(os.environ.get("SOAK_MACHINES", "50"))
OUTAGE_S = float(os.environ.get("SOAK_OUTAGE_S", "60"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "10"))


def outage_starts(duration_s):
    """One Kafka outage an hour, at 30 min + k h; a run shorter than an hour gets one at mid-run."""
    if duration_s < 3600:
        return [duration_s / 2 - OUTAGE_S / 2]
    return [1800 + 3600 * k for k in range(int((duration_s - 1800) // 3600) + 1) if 1800 + 3600 * k + OUTAGE_S < duration_s]


def slope_per_hour(points):
    """Least-squares slope of (t seconds, y) in y per hour; nan with fewer than 3 points."""
    if len(points) < 3: return float("nan")
    n = len(points); mt = sum(t for t, _ in points) / n; my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return float("nan") if den == 0 else 3600 * sum((t - mt) * (y - my) for t, y in points) / den


def proc_sample(pid):
    rss = fds = None
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"): rss = int(line.split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        pass
    return rss, fds


def metric_sum(rig, name):
    """The sum of every sample of `name` (with or without labels); None when unreachable."""
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % rig.http_port, timeout=2) as r:
            total = 0.0
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"): total += float(line.rsplit(" ", 1)[1])
            return total
    except Exception:
        return None


def size(path):
    try: return os.path.getsize(path)
    except OSError: return 0


class Consumer:
    """kcat reading forewarn.readings live; counts each (machine, counter) once, and duplicates."""
    def __init__(self, rig, per_machine):
        self.seen = {}  # machine -> bytearray of per-counter copies (capped at 255)
        self.per_machine = per_machine
        self.records = self.duplicates = self.bad = 0
        self.first_offset = {}
        # -E: kcat would otherwise exit when every broker is down (the outage).
        self.p = started(subprocess.Popen(["kcat", "-C", "-E", "-b", rig.bootstrap, "-t", "forewarn.readings", "-o", "beginning", "-u", "-q",
                                           "-f", "%p %o %k %s\n"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=1 << 20))
        self.thread = threading.Thread(target=self.read, daemon=True); self.thread.start()

    def read(self):
        value = re.compile(rb'"value":\s*(-?[0-9.]+)')
        for line in self.p.stdout:
            try:
                p, o, k, s = line.split(b" ", 3)
                p = int(p)
                if p not in self.first_offset: self.first_offset[p] = int(o)
                c = int(float(value.search(s).group(1)))
                m = k.decode()
                arr = self.seen.get(m)
                if arr is None: arr = self.seen[m] = bytearray(self.per_machine)
                if arr[c]: self.duplicates += 1
                if arr[c] < 255: arr[c] += 1
                self.records += 1
            except Exception:
                self.bad += 1

    def stop(self):
        self.p.terminate()
        try: self.p.wait(10)
        except subprocess.TimeoutExpired: self.p.kill(); self.p.wait()
        self.thread.join(10)


def main():
    blocked = signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if blocked: log("unblocked signals inherited from the parent: %s" % sorted(int(s) for s in blocked))
    def on_signal(signum, frame): raise SystemExit(130)
    signal.signal(signal.SIGTERM, on_signal); signal.signal(signal.SIGINT, on_signal)
    duration = MINUTES * 60
    per_machine = int(RATE * duration) // MACHINES
    n = per_machine * MACHINES
    rig = Rig()
    ok = False
    csv_path = os.path.join(WORK, "soak.csv")
    try:
        rig.start_kafka(); rig.start_mosquitto(); rig.start_gateway()
        consumer = Consumer(rig, per_machine)
        starts = outage_starts(duration)
        log("soak: %.0f min at %d readings/s from %d machines (%d readings); Kafka outage(s) of %.0f s at +%s s; "
            "samples every %.0f s into %s" % (MINUTES, RATE, MACHINES, n, OUTAGE_S, ",".join("%.0f" % s for s in starts), SAMPLE_S, csv_path))
        pub = subprocess.Popen([os.path.join(WORK, "publisher"), "-p", str(rig.mqtt_port), "-n", str(n), "-m", str(MACHINES),
                                "-s", "soak", "-r", str(RATE), "-w", "1000", "-D", str(int(duration)), "-T", str(int(duration + 600)),
                                "-i", "soak-pub", "-c", "-q"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started(pub)
        t0 = time.monotonic()
        journal = rig.journal
        rows, outages, pending = [], [], list(starts)
        with open(csv_path, "w") as f:
            f.write("t_s,rss_kib,fds,journal_bytes,wal_bytes,journal_readings,readings_in,readings_out,kafka_up,consumed\n")
            next_sample = t0
            kafka_up = True
            while pub.poll() is None and time.monotonic() - t0 < duration + 600:
                now = time.monotonic()
                if pending and now - t0 >= pending[0]:
                    rig.kafka_cmd("down"); kafka_up = False; down_at = now - t0; pending.pop(0)
                    log("soak: Kafka down at +%.0f s for %.0f s" % (down_at, OUTAGE_S))
                if not kafka_up and now - t0 >= down_at + OUTAGE_S:
                    rig.kafka_cmd("up"); kafka_up = True; outages.append((down_at, now - t0))
                    log("soak: Kafka up at +%.0f s" % (now - t0))
                if now >= next_sample:
                    rss, fds = proc_sample(rig.gw.pid)
                    row = (now - t0, rss, fds, size(journal), size(journal + "-wal"), metric_sum(rig, "forewarn_gateway_journal_readings"),
                           metric_sum(rig, "forewarn_gateway_readings_in_total"), metric_sum(rig, "forewarn_gateway_readings_out_total"),
                           int(kafka_up), consumer.records)
                    rows.append(row)
                    f.write(",".join("" if v is None else ("%.1f" % v if isinstance(v, float) else str(v)) for v in row) + "\n"); f.flush()
                    next_sample += SAMPLE_S
                time.sleep(0.2)
        if not kafka_up: rig.kafka_cmd("up"); outages.append((down_at, time.monotonic() - t0))
        try: out, err = pub.communicate(timeout=60)
        except subprocess.TimeoutExpired: pub.kill(); out, err = pub.communicate()
        m = re.search(r"published (\d+) acknowledged (\d+)", out or "")
        published, acked = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        r = re.search(r"rate=([0-9.]+)", err or ""); rate = float(r.group(1)) if r else float("nan")
        log("soak: publisher exit %s, %d published in %.0f s (target %d), %d acknowledged, %.0f readings/s"
            % (pub.returncode, published, duration, n, acked, rate))
        rig.settle(300)
        final_in, final_out = metric_sum(rig, "forewarn_gateway_readings_in_total"), metric_sum(rig, "forewarn_gateway_readings_out_total")
        dropped = metric_sum(rig, "forewarn_gateway_dropped_total") or 0
        rig.stop_gateway("final", "sigterm")
        gw_status = rig.gw.returncode
        wait_for(lambda: consumer.records >= published, 120, 0.5)
        last = -1
        while consumer.records != last:  # keep reading until nothing new arrives for 3 s (bounded by kcat's pace)
            last = consumer.records; time.sleep(3)
        consumer.stop()
        # Reconcile by (machine, counter). A partition the mock trimmed (first offset > 0) had its
        # oldest records dropped by dev-kafka: those count as trimmed, not lost.
        lost = trimmed = 0
        trimmed_parts = {p: o for p, o in consumer.first_offset.items() if o > 0}
        for i in range(MACHINES):
            arr = consumer.seen.get("m%03d" % (i + 1), bytearray(per_machine))
            # Round-robin: reading k went to machine k % MACHINES with counter k // MACHINES.
            expected = (published - i + MACHINES - 1) // MACHINES
            missing = [c for c in range(expected) if not arr[c]]
            if missing and trimmed_parts:
                first = next((c for c in range(expected) if arr[c]), expected)
                trimmed += sum(1 for c in missing if c < first); lost += sum(1 for c in missing if c >= first)
            else:
                lost += len(missing)
        # Slopes: RSS and fds over the whole run and after the outage's drain; journal sizes
        # excluding the outage (from its start until the journal is drained again).
        drained_at = None
        if outages:
            after = [row for row in rows if row[0] > outages[-1][1] and (row[5] or 0) < 2 * RATE]
            drained_at = after[0][0] if after else None
        def window(row):
            return not any(a <= row[0] <= (drained_at if drained_at and drained_at > b else b) for a, b in outages)
        def pts(col, keep=lambda row: True): return [(row[0], row[col]) for row in rows if row[col] is not None and keep(row)]
        def mm(col): v = [row[col] for row in rows if row[col] is not None]; return (min(v), max(v)) if v else (0, 0)
        steady = lambda row: window(row)
        before = lambda row: not outages or row[0] < outages[0][0]
        post = lambda row: drained_at is not None and row[0] >= drained_at
        print("soak: %.0f min at %d readings/s target (publisher measured %.0f/s over its run: %d readings), %d machines; %d Kafka outage(s): %s; %d samples every %.0f s in %s"
              % (MINUTES, RATE, rate, published, MACHINES, len(outages), ", ".join("+%.0f..+%.0f s" % o for o in outages), len(rows), SAMPLE_S, csv_path))
        for name, col in (("RSS KiB", 1), ("open fds", 2), ("journal file bytes", 3), ("WAL bytes", 4), ("journal readings", 5)):
            lo, hi = mm(col)
            print("  %-19s min %12s max %12s | slope/h: whole run %12.1f, outside the outage %12.1f, before it %12.1f, after its drain %12.1f"
                  % (name, lo, hi, slope_per_hour(pts(col)), slope_per_hour(pts(col, steady)), slope_per_hour(pts(col, before)), slope_per_hour(pts(col, post))))
        ok = pub.returncode == 0 and acked == published > 0 and lost == 0 and consumer.bad == 0 and dropped == 0 and gw_status == 0
        print("%s reconciliation: published %d, acknowledged by mosquitto %d, gateway in %d out %d dropped %d; Kafka: %d records, "
              "%d distinct (machine, counter), %d duplicates, lost %d%s; %d unparsable; after the outage the journal was drained again at +%s s; gateway exit status after SIGTERM %s"
              % ("PASS" if ok else "FAIL", published, acked, final_in or 0, final_out or 0, dropped or 0, consumer.records,
                 consumer.records - consumer.duplicates, consumer.duplicates, lost,
                 " (+%d trimmed by dev-kafka's retention, partitions %s)" % (trimmed, trimmed_parts) if trimmed else "",
                 consumer.bad, "%.0f" % drained_at if drained_at else "?", gw_status))
        sys.stdout.flush()
    finally:
        rig.stop_all()
        log("soak: data and logs in %s" % WORK)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
