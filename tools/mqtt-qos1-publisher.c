/*
 * mqtt-qos1-publisher: a small, reliable QoS 1 load publisher for Forewarn's outside checks
 * and benchmarks (scripts/verify-gateway, scripts/bench-gateway).
 *
 * Publishes N readings round-robin over M machines to factory/<site>/mNNN/<sensor> as
 *   {"ts": <epoch ms>, "value": <float>, "unit": "mm/s"}
 * and waits for every PUBACK. `ts` is the wall clock at send, bumped so that it is strictly
 * increasing per machine (ts = max(now_ms, previous ts of that machine + 1)); (machine, ts)
 * therefore identifies every reading of one run.
 *
 * Unlike `mosquitto_pub -l` (which drops QoS 1 messages still in flight when its input
 * ends), this tracks every outstanding message id and only exits 0 when all were acknowledged.
 *
 * Build: cc -O2 -o mqtt-qos1-publisher tools/mqtt-qos1-publisher.c -lmosquitto
 *
 * Usage: mqtt-qos1-publisher [options]
 *   -h HOST      broker host (127.0.0.1)
 *   -p PORT      broker port (1883)
 *   -n N         readings to publish (1000)
 *   -m M         machines, m001..mM, round-robin (10)
 *   -s SITE      site segment of the topic (s1)
 *   -S SENSOR    sensor segment of the topic (vib_rms)
 *   -P K         after the N readings, K more on sensor segment "pad", paced like the others: the
 *                stream goes on past the last counted reading, as a live one does (0). A consumer
 *                that counts SENSOR's readings then never measures the end of a stream (a path
 *                that buffers its input would hold the last lines until more input comes)
 *   -w WINDOW    max messages published but not acknowledged (1000)
 *   -r RATE      messages per second, 0 = as fast as the window allows (0)
 *   -e K:CMD     before publishing message index K (0-based) run `/bin/sh -c CMD` and wait
 *                for it (repeatable, up to 16). Use it to signal other processes mid-run,
 *                e.g. -e "5000:kill -USR1 1234", or to write to a fifo, or to pause ("sleep 2").
 *   -T SECONDS   overall deadline for publishing and acknowledgements (120)
 *   -D SECONDS   stop publishing after SECONDS (at most N readings), then wait for the
 *                acknowledgements; success when every published message was acknowledged (a soak)
 *   -i ID        client id (forewarn-bench-pub-<pid>)
 *   -Q QOS       publish at QoS 0 or 1 (1). At QoS 0 there is no PUBACK: a message counts as
 *                acknowledged once libmosquitto has written it to the socket (its publish callback)
 *   -q           quiet: no progress on stderr
 *   -c           value is the reading's per-machine counter (0, 1, 2, ... for each machine), so a
 *                reconciliation can name lost and reordered readings (scripts/chaos); after a lost
 *                connection it also waits for every earlier message's PUBACK before publishing more,
 *                so its own resends never overtake or get overtaken (publish order is kept)
 *
 * stdout, at the end: `published N acknowledged N`
 * stderr, at the end: `stats start_ms=.. published_ms=.. acked_ms=.. elapsed_s=.. rate=..`
 * Exit status: 0 when every message was acknowledged, 1 otherwise, 2 on usage errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <mosquitto.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 16
#define MID_SPACE 65536

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;          /* signalled on PUBACK and on connection changes */
static long outstanding = 0;            /* published, not yet acknowledged */
static long acknowledged = 0;
static long unknown_acks = 0;           /* PUBACKs for mids we were not waiting for */
static int connected = 0;
static long disconnects = 0;            /* connection losses so far */
static int connect_failed_rc = 0;
static unsigned char pending[MID_SPACE]; /* 1 while a mid awaits its PUBACK */

struct event { long index; const char *cmd; };

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct timespec deadline_ts(double mono_deadline) {
    /* condvar is set to CLOCK_MONOTONIC */
    struct timespec ts;
    ts.tv_sec = (time_t)mono_deadline;
    ts.tv_nsec = (long)((mono_deadline - (double)ts.tv_sec) * 1e9);
    return ts;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc) {
    (void)mosq; (void)obj;
    pthread_mutex_lock(&lock);
    if (rc == 0) connected = 1; else connect_failed_rc = rc;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc) {
    (void)mosq; (void)obj; (void)rc;
    pthread_mutex_lock(&lock);
    connected = 0;
    disconnects++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid) {
    (void)mosq; (void)obj;
    pthread_mutex_lock(&lock);
    if (mid >= 0 && mid < MID_SPACE && pending[mid]) {
        pending[mid] = 0;
        outstanding--;
        acknowledged++;
    } else {
        unknown_acks++;
    }
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s [-h host] [-p port] [-n N] [-m machines] [-s site] [-S sensor] [-P pad] [-w window] "
                    "[-r rate] [-e K:CMD]... [-T seconds] [-D seconds] [-i client-id] [-Q qos] [-q] [-c]\n", argv0);
    exit(2);
}

static long parse_long(const char *s, const char *what, long min) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min) { fprintf(stderr, "invalid %s: %s\n", what, s); exit(2); }
    return v;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *site = "s1", *sensor = "vib_rms";
    char client_id[64];
    snprintf(client_id, sizeof client_id, "forewarn-bench-pub-%d", (int)getpid());
    long pad = 0;
    long port = 1883, n = 1000, machines = 10, window = 1000, rate = 0, timeout_s = 120;
    int quiet = 0;
    int qos = 1;
    int counter_values = 0;
    long seen_disconnects = 0;
    struct event events[MAX_EVENTS];
    int nevents = 0;

    long stop_after_s = 0;
    int opt;
    while ((opt = getopt(argc, argv, "h:p:n:m:s:S:P:w:r:e:T:D:i:qcQ:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = parse_long(optarg, "port", 1); break;
        case 'n': n = parse_long(optarg, "count", 0); break;
        case 'm': machines = parse_long(optarg, "machines", 1); break;
        case 's': site = optarg; break;
        case 'S': sensor = optarg; break;
        case 'P': pad = parse_long(optarg, "pad", 0); break;
        case 'w': window = parse_long(optarg, "window", 1); break;
        case 'r': rate = parse_long(optarg, "rate", 0); break;
        case 'T': timeout_s = parse_long(optarg, "timeout", 1); break;
        case 'D': stop_after_s = parse_long(optarg, "stop-after", 1); break;
        case 'i': snprintf(client_id, sizeof client_id, "%s", optarg); break;
        case 'q': quiet = 1; break;
        case 'Q': qos = (int)parse_long(optarg, "qos", 0); if (qos > 1) usage(argv[0]); break;
        case 'c': counter_values = 1; break;
        case 'e': {
            char *colon = strchr(optarg, ':');
            if (!colon || nevents >= MAX_EVENTS) usage(argv[0]);
            *colon = '\0';
            events[nevents].index = parse_long(optarg, "event index", 0);
            events[nevents].cmd = colon + 1;
            nevents++;
            break;
        }
        default: usage(argv[0]);
        }
    }
    if (machines > 999) { fprintf(stderr, "at most 999 machines\n"); return 2; }
    if (window > 30000) window = 30000; /* stay well inside the 16-bit mid space */

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &ca);

    mosquitto_lib_init();
    struct mosquitto *mosq = mosquitto_new(client_id, true, NULL);
    if (!mosq) { perror("mosquitto_new"); return 1; }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_disconnect_callback_set(mosq, on_disconnect);
    mosquitto_publish_callback_set(mosq, on_publish);
    mosquitto_max_inflight_messages_set(mosq, (unsigned)window);
    mosquitto_reconnect_delay_set(mosq, 1, 2, false);

    double t0 = mono_s();
    double deadline = t0 + (double)timeout_s;
    int rc = mosquitto_connect_async(mosq, host, (int)port, 30);
    if (rc != MOSQ_ERR_SUCCESS) { fprintf(stderr, "connect %s:%ld: %s\n", host, port, mosquitto_strerror(rc)); return 1; }
    rc = mosquitto_loop_start(mosq);
    if (rc != MOSQ_ERR_SUCCESS) { fprintf(stderr, "loop_start: %s\n", mosquitto_strerror(rc)); return 1; }

    /* Wait for the CONNACK. */
    pthread_mutex_lock(&lock);
    while (!connected && !connect_failed_rc && mono_s() < t0 + 10 && mono_s() < deadline) {
        struct timespec ts = deadline_ts(mono_s() + 0.1);
        pthread_cond_timedwait(&changed, &lock, &ts);
    }
    int ok = connected;
    pthread_mutex_unlock(&lock);
    if (!ok) {
        fprintf(stderr, "could not connect to %s:%ld (%s)\n", host, port,
                connect_failed_rc ? mosquitto_connack_string(connect_failed_rc) : "timeout");
        mosquitto_loop_stop(mosq, true);
        return 1;
    }

    int64_t *last_ts = calloc((size_t)machines, sizeof *last_ts);
    char topic[256], payload[128];
    int64_t start_ms = wall_ms();
    double pub_start = mono_s();
    long published = 0;
    int failed = 0;
    double next_progress = pub_start + 1;

    long total = n + pad;
    for (long i = 0; i < total && !failed; i++) {
        if (stop_after_s > 0 && mono_s() - pub_start >= (double)stop_after_s) break;
        for (int e = 0; e < nevents; e++) {
            if (events[e].index == i) {
                if (!quiet) fprintf(stderr, "publisher: at message %ld: running: %s\n", i, events[e].cmd);
                int st = system(events[e].cmd);
                if (st != 0) fprintf(stderr, "publisher: event command exited with status %d\n", st);
            }
        }
        if (rate > 0) {
            double due = pub_start + (double)i / (double)rate;
            double now = mono_s();
            if (due > now) {
                struct timespec ts = deadline_ts(due);
                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
            }
        }
        /* Bounded in-flight window. */
        pthread_mutex_lock(&lock);
        while (outstanding >= window) {
            if (mono_s() >= deadline) { failed = 1; break; }
            struct timespec ts = deadline_ts(mono_s() + 0.1);
            pthread_cond_timedwait(&changed, &lock, &ts);
        }
        pthread_mutex_unlock(&lock);
        if (failed) { fprintf(stderr, "publisher: deadline reached with the in-flight window full\n"); break; }

        long m = i % machines;
        int64_t ts = wall_ms();
        if (ts <= last_ts[m]) ts = last_ts[m] + 1;
        last_ts[m] = ts;
        double value = counter_values ? (double)(i / machines) : 1.0 + (double)m * 0.01 + (double)(i % 997) * 0.001;
        snprintf(topic, sizeof topic, "factory/%s/m%03ld/%s", site, m + 1, i < n ? sensor : "pad");
        int len = snprintf(payload, sizeof payload, "{\"ts\": %lld, \"value\": %.3f, \"unit\": \"mm/s\"}", (long long)ts, value);

        /* Hold the lock across publish so that a fast PUBACK cannot arrive before we mark the mid. */
        pthread_mutex_lock(&lock);
        /* After a lost connection, libmosquitto resends the unacknowledged messages on its own
         * schedule; publishing more before they are acknowledged could overtake them. With -c
         * (order matters to the caller) wait until every earlier message is acknowledged. */
        if (counter_values && disconnects != seen_disconnects) {
            while ((outstanding > 0 || !connected) && mono_s() < deadline) {
                struct timespec t = deadline_ts(mono_s() + 0.05);
                pthread_cond_timedwait(&changed, &lock, &t);
            }
            seen_disconnects = disconnects;
        }
        int mid = 0;
        for (int attempt = 0;; attempt++) {
            rc = mosquitto_publish(mosq, &mid, topic, len, payload, qos, false);
            if (rc == MOSQ_ERR_SUCCESS) break;
            if ((rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_OVERSIZE_PACKET || rc == MOSQ_ERR_NOMEM) && mono_s() < deadline && attempt < 100000) {
                /* Not connected right now: wait for the reconnect (messages queue in libmosquitto otherwise). */
                struct timespec t = deadline_ts(mono_s() + 0.05);
                pthread_cond_timedwait(&changed, &lock, &t);
                continue;
            }
            break;
        }
        if (rc != MOSQ_ERR_SUCCESS) {
            pthread_mutex_unlock(&lock);
            fprintf(stderr, "publisher: publish %ld failed: %s\n", i, mosquitto_strerror(rc));
            failed = 1;
            break;
        }
        if (pending[mid]) unknown_acks++; /* a mid reused while still pending: window too large */
        pending[mid] = 1;
        outstanding++;
        pthread_mutex_unlock(&lock);
        published++;

        if (!quiet && mono_s() >= next_progress) {
            next_progress += 1;
            pthread_mutex_lock(&lock);
            fprintf(stderr, "publisher: published %ld acknowledged %ld\n", published, acknowledged);
            pthread_mutex_unlock(&lock);
        }
    }
    int64_t published_ms = wall_ms();

    /* Wait for every PUBACK. */
    pthread_mutex_lock(&lock);
    while (acknowledged < published && mono_s() < deadline) {
        struct timespec ts = deadline_ts(mono_s() + 0.1);
        pthread_cond_timedwait(&changed, &lock, &ts);
    }
    long acked = acknowledged, unknown = unknown_acks;
    pthread_mutex_unlock(&lock);
    int64_t acked_ms = wall_ms();
    double elapsed = (double)(acked_ms - start_ms) / 1000.0;

    mosquitto_disconnect(mosq);
    mosquitto_loop_stop(mosq, false);
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    free(last_ts);

    printf("published %ld acknowledged %ld\n", published, acked);
    fflush(stdout);
    fprintf(stderr, "stats start_ms=%lld published_ms=%lld acked_ms=%lld elapsed_s=%.3f rate=%.0f unknown_acks=%ld\n",
            (long long)start_ms, (long long)published_ms, (long long)acked_ms, elapsed,
            elapsed > 0 ? (double)acked / elapsed : 0.0, unknown);
    if (stop_after_s > 0 ? acked != published : (published != total || acked != total)) {
        fprintf(stderr, "publisher: FAILED: %ld of %ld published, %ld acknowledged\n", published, total, acked);
        return 1;
    }
    return 0;
}
