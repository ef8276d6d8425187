"""The run of scripts/commit-churn (read its header). Uses the rig of scripts/chaos.py; every
process it starts is stopped at the end, also on errors."""
import os, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chaos import Rig, log, started  # noqa: E402

RATE, SECONDS = int(os.environ.get("CHURN_RATE", "2000")), int(os.environ.get("CHURN_S", "150"))


def main():
    rig = Rig()
    status = None
    try:
        rig.start_kafka(); rig.start_mosquitto(); rig.start_gateway()
        pub = started(subprocess.Popen([os.path.join(os.environ["WORK"], "publisher"), "-p", str(rig.mqtt_port), "-n", str(RATE * SECONDS),
                                        "-m", "50", "-r", str(RATE), "-D", str(SECONDS), "-T", str(SECONDS + 60), "-i", "churn-pub", "-c", "-q"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        out, _ = pub.communicate(timeout=SECONDS + 120)
        log("commit-churn: publisher: %s" % out.strip())
        rig.settle(60)
        t = time.monotonic()
        rig.gw.send_signal(signal.SIGTERM)
        status = rig.gw.wait(60)
        print("%s commit-churn: gateway exit status after SIGTERM %d (%.1f s after the signal)"
              % ("PASS" if status == 0 else "FAIL", status, time.monotonic() - t))
    finally:
        rig.stop_all()
        log("commit-churn: data and logs in %s" % os.environ["WORK"])
    sys.exit(0 if status == 0 else 1)


if __name__ == "__main__":
    main()
