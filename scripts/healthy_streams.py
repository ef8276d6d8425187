#!/usr/bin/env python3
"""healthy_streams: false alerts on healthy synthetic streams that are not in NAB or SKAB.

Writes seeded NAB-format CSVs of stream shapes real sensors have (docs/detection.md,
"Healthy streams"), with no anomaly in them, at four reading intervals, replays each through
`forewarn detect --replay` and counts the alert openings: on these streams every opening is a
false alert. Pure Python (the standard library's seeded `random`), so the figures are the same
on any machine with the same Python.

Usage: healthy_streams.py FOREWARN_BIN [--seeds 1,2,3] [--only SHAPE[,SHAPE]] [--dir DIR]
"""
import argparse
import concurrent.futures
import datetime as dt
import math
import os
import random
import subprocess
import sys
import tempfile

T0 = dt.datetime(2026, 1, 5)  # a Monday
DAY = 86400
# (reading interval in seconds, days of stream): from a fast sensor to a bearing rig's snapshots.
INTERVALS = [(10, 3), (60, 14), (300, 30), (600, 30)]


def ar1(rng, n, phi, sd=1.0):
    """AR(1) noise with stationary standard deviation sd."""
    out, x, k = [], 0.0, sd * math.sqrt(1 - phi * phi)
    for _ in range(n):
        x = phi * x + k * rng.gauss(0, 1)
        out.append(x)
    return out


def student_t(rng, dof):
    chi2 = sum(rng.gauss(0, 1) ** 2 for _ in range(dof))
    return rng.gauss(0, 1) / math.sqrt(chi2 / dof)


def poisson(rng, mean):
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return float(k)


def shapes(rng, n, step):
    """(name, [columns]) for one reading interval; every column has n values."""
    t = [i * step for i in range(n)]
    day = [math.sin(2 * math.pi * x / DAY) for x in t]
    g = lambda sd=1.0: [rng.gauss(0, sd) for _ in range(n)]
    yield 'white', [[50 + e for e in g()]]
    yield 'ar0.9', [[50 + e for e in ar1(rng, n, 0.9)]]
    yield 'ar0.99', [[50 + e for e in ar1(rng, n, 0.99)]]
    walk, w = [], 0.0
    for e in g():
        w += 0.02 * rng.gauss(0, 1)
        walk.append(50 + w + e)
    yield 'wander', [walk]
    yield 'daily', [[50 + 10 * d + e for d, e in zip(day, g())]]
    yield 'weekly', [[(40 if (x // DAY) % 7 >= 5 else 100) + 10 * d + e for x, d, e in zip(t, day, g(3))]]
    yield 'poisson3', [[poisson(rng, 3) for _ in range(n)]]
    yield 'zero-inflated', [[0.0 if rng.random() < 0.7 else poisson(rng, 4) for _ in range(n)]]
    yield 'quantised', [[float(round(50 + e)) for e in ar1(rng, n, 0.95, 0.4)]]
    yield 't3', [[50 + student_t(rng, 3) for _ in range(n)]]
    yield 'lognormal', [[math.exp(rng.gauss(3, 0.5)) for _ in range(n)]]
    yield 'trend', [[50 + 5 * i / n + e for i, e in enumerate(g())]]
    yield 'daily-ar', [[50 + 10 * d + 2 * e for d, e in zip(day, ar1(rng, n, 0.95))]]
    common = ar1(rng, n, 0.98)
    yield 'rig4-ar', [[10 + 0.3 * d + 0.5 * c + 0.3 * e for d, c, e in zip(day, common, ar1(rng, n, 0.9))]
                      for _ in range(4)]
    yield 'rig4-white', [[10 + 0.3 * d + e for d, e in zip(day, g(0.3))] for _ in range(4)]


def write(path, times, columns):
    with open(path, 'w') as f:
        f.write('timestamp,' + (','.join(f's{i}' for i in range(len(columns))) if len(columns) > 1 else 'value') + '\n')
        for i, x in enumerate(times):
            stamp = (T0 + dt.timedelta(seconds=x)).strftime('%Y-%m-%d %H:%M:%S')
            f.write(stamp + ',' + ','.join('%.6g' % c[i] for c in columns) + '\n')


def generate(directory, seed, only):
    files = []
    for step, days in INTERVALS:
        n = days * DAY // step
        rng = random.Random(seed * 1000 + step)
        for name, columns in shapes(rng, n, step):
            if only and name not in only:
                continue
            path = os.path.join(directory, f'{name}_{step}s_seed{seed}.csv')
            write(path, [i * step for i in range(n)], columns)
            files.append((name, step, days, path))
        if not only or 'irregular' in only:
            # Exponential gaps around the interval, and one reading in 500 followed by a gap 50 times longer.
            times, x = [], 0.0
            while True:
                gap = rng.expovariate(1 / step) * (50 if rng.random() < 0.002 else 1)
                x += gap
                if x >= days * DAY:
                    break
                times.append(round(x))
            path = os.path.join(directory, f'irregular_{step}s_seed{seed}.csv')
            write(path, times, [[50 + rng.gauss(0, 1) for _ in times]])
            files.append(('irregular', step, days, path))
    return files


def openings(binary, path):
    out = subprocess.run([binary, 'detect', '--replay', path], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines()[1:] if line.split(',')[2] == '1')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('binary')
    ap.add_argument('--seeds', default='1,2,3')
    ap.add_argument('--only', default='')
    ap.add_argument('--dir', default='')
    a = ap.parse_args()
    only = set(filter(None, a.only.split(',')))
    directory = a.dir or tempfile.mkdtemp(prefix='forewarn-healthy-')
    os.makedirs(directory, exist_ok=True)
    files = []
    for seed in map(int, a.seeds.split(',')):
        files += generate(directory, seed, only)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        counts = list(ex.map(lambda f: openings(a.binary, f[3]), files))
    shapes_seen = sorted({f[0] for f in files})
    print(f'healthy streams, seeds {a.seeds}: false alert openings (every opening is false), files in {directory}')
    print('| shape | ' + ' | '.join(f'{s} s' for s, _ in INTERVALS) + ' | per stream-day |')
    print('| --- |' + ' --- |' * (len(INTERVALS) + 1))
    total = total_days = 0
    for name in shapes_seen:
        cells, k_all, d_all = [], 0, 0
        for step, days in INTERVALS:
            k = sum(c for f, c in zip(files, counts) if f[0] == name and f[1] == step)
            cells.append(str(k))
            k_all += k
            d_all += sum(f[2] for f in files if f[0] == name and f[1] == step)
        total += k_all
        total_days += d_all
        print(f'| {name} | ' + ' | '.join(cells) + f' | {k_all / d_all:.3f} |')
    print(f'all: {total} openings over {total_days} stream-days, {total / total_days:.3f} per stream-day; '
          f'{sum(1 for c in counts if c)} of {len(files)} files open any')


if __name__ == '__main__':
    sys.exit(main())
