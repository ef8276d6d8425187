// journal-insert-cost: SQLite's cost of journaling N readings, schema version 2 against 3, for
// callgrind (the Swift binary's DWARF 5 stops valgrind; this C program runs the same statements).
// Version 2: `seq INTEGER PRIMARY KEY AUTOINCREMENT`, implicit seq (sqlite_sequence read and
// rewritten by every insert). Version 3: plain `seq INTEGER PRIMARY KEY`, the seq bound on every
// insert, and `UPDATE seq_high_water` once per commit, as Journal does. WAL, synchronous=FULL, the
// journal's columns, a 95-byte payload (what `forewarn bench journal` appends), GROUP per commit.
// Build: cc -O2 -o /tmp/jic tools/journal-insert-cost.c -lsqlite3
// (Version 2 creates seq_high_water too, unused, so both prepare the same statements.)
// Run:   valgrind --tool=callgrind --toggle-collect=ingest /tmp/jic 2|3 N GROUP DIR
//        (the Ir total over N is the instructions per entry; without valgrind it prints wall time)
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void check(int rc, sqlite3 *db, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) { fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db)); exit(1); }
}

// The measured part: N inserts in transactions of `group` (callgrind --toggle-collect=ingest).
__attribute__((noinline)) void ingest(sqlite3 *db, int version, long n, int group) {
    sqlite3_stmt *ins, *hw, *begin, *commit;
    const char *sql = version == 2
        ? "INSERT INTO entries(kind, machine, mqtt_topic, received_ms, payload, reason, size) VALUES (0,?1,?2,?3,?4,NULL,?5)"
        : "INSERT INTO entries(seq, kind, machine, mqtt_topic, received_ms, payload, reason, size) VALUES (?6,0,?1,?2,?3,?4,NULL,?5)";
    check(sqlite3_prepare_v2(db, sql, -1, &ins, 0), db, "prepare insert");
    check(sqlite3_prepare_v2(db, "UPDATE seq_high_water SET seq = ? WHERE id = 1", -1, &hw, 0), db, "prepare update");
    check(sqlite3_prepare_v2(db, "BEGIN", -1, &begin, 0), db, "prepare begin");
    check(sqlite3_prepare_v2(db, "COMMIT", -1, &commit, 0), db, "prepare commit");
    char payload[95];
    memset(payload, 'x', sizeof payload);
    long seq = 0;
    while (seq < n) {
        check(sqlite3_step(begin), db, "begin"); sqlite3_reset(begin);
        for (int j = 0; j < group && seq < n; j++) {
            seq++;
            sqlite3_bind_text(ins, 1, "m001", -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 2, "factory/s1/m001/vib_rms", -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(ins, 3, 1796000000000 + seq);
            sqlite3_bind_blob(ins, 4, payload, sizeof payload, SQLITE_TRANSIENT);
            sqlite3_bind_int64(ins, 5, 170);
            if (version == 3) sqlite3_bind_int64(ins, 6, seq);
            check(sqlite3_step(ins), db, "insert"); sqlite3_reset(ins);
        }
        if (version == 3) { sqlite3_bind_int64(hw, 1, seq); check(sqlite3_step(hw), db, "update"); sqlite3_reset(hw); }
        check(sqlite3_step(commit), db, "commit"); sqlite3_reset(commit);
    }
    sqlite3_finalize(ins); sqlite3_finalize(hw); sqlite3_finalize(begin); sqlite3_finalize(commit);
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s 2|3 N GROUP DIR\n", argv[0]); return 2; }
    int version = atoi(argv[1]), group = atoi(argv[3]);
    long n = atol(argv[2]);
    char path[512], side[600];
    snprintf(path, sizeof path, "%s/jic-v%d.sqlite", argv[4], version);
    unlink(path); snprintf(side, sizeof side, "%s-wal", path); unlink(side); snprintf(side, sizeof side, "%s-shm", path); unlink(side);
    sqlite3 *db;
    check(sqlite3_open(path, &db), db, "open");
    const char *schema = version == 2
        ? "CREATE TABLE entries(seq INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL, machine TEXT NOT NULL, mqtt_topic TEXT NOT NULL,"
          " received_ms INTEGER NOT NULL, payload BLOB NOT NULL, reason TEXT, size INTEGER NOT NULL);"
          "CREATE TABLE recent_messages(id INTEGER PRIMARY KEY AUTOINCREMENT, digest INTEGER NOT NULL);"
          "CREATE TABLE seq_high_water(id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL); INSERT INTO seq_high_water VALUES (1, 0);"
        : "CREATE TABLE entries(seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, machine TEXT NOT NULL, mqtt_topic TEXT NOT NULL,"
          " received_ms INTEGER NOT NULL, payload BLOB NOT NULL, reason TEXT, size INTEGER NOT NULL);"
          "CREATE TABLE recent_messages(id INTEGER PRIMARY KEY AUTOINCREMENT, digest INTEGER NOT NULL);"
          "CREATE TABLE seq_high_water(id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL); INSERT INTO seq_high_water VALUES (1, 0);";
    check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", 0, 0, 0), db, "pragmas");
    check(sqlite3_exec(db, schema, 0, 0, 0), db, "schema");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ingest(db, version, n, group);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("version %d: %ld entries, %d per commit: %.0f ns/entry wall\n", version, n, group, s / n * 1e9);
    sqlite3_close(db);
    unlink(path);
    return 0;
}
