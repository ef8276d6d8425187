#!/usr/bin/env python3
"""runs_to_failure: is an alert open at the failure, and since when, on synthetic bearing runs.

Writes seeded NAB-format CSVs of a vibration feature (an RMS level with autocorrelated noise and
a slow random drift) that is healthy until an onset and then degrades to a failure at the last
reading, in four ways (docs/detection.md, "Runs to failure"):
  exp     a rise that is slow at first and exponential at the end (wear);
  step    a defect's step of 30 % at the onset, a plateau, then an exponential rise;
  linear  a steady rise;
  bump    a bump at the onset that subsides (a defect smoothed over), then an exponential rise;
  raised  the same bump, subsiding to a level a quarter above the healthy one.
Each as one sensor ('solo') and as a 4-sensor rig where one bearing fails and three stay healthy
('rig'), for four run lengths (10-minute snapshots over 7, 30 and 35 days, 5-minute over 14 days,
degrading over the last 2 to 5 days), seeds 1-3. Each file is replayed through
`forewarn detect --replay`; the failure is the last reading. Printed per shape: failures with an
alert open at the failure, that alert's lead (its opening to the failure), how many have at least
24 h, and openings before the onset (false: the machine is healthy there) per healthy machine-day.
Pure Python (the standard library's seeded `random`), so the figures are the same on any machine.

Usage: runs_to_failure.py FOREWARN_BIN [--seeds 1,2,3] [--dir DIR]
"""
import argparse
import concurrent.futures
import datetime as dt
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile

T0 = dt.datetime(2026, 1, 5)
DAY = 86400
# (snapshot interval in seconds, days of run, days of degradation before the failure)
RUNS = [(600, 7, 2), (300, 14, 2), (600, 30, 3), (600, 35, 5)]
KINDS = ['exp', 'step', 'linear', 'bump', 'raised']
LEAD_H = 24


def rise(u, rate):
    """0 at u = 0, 4 (a level five times the healthy one) at u = 1, exponential with this rate."""
    return (math.exp(rate * u) - 1) / (math.exp(rate) - 1) * 4


def degradation(kind, u):
    """The relative rise of the level at fraction u of the degradation (0 at the onset, 1 at failure)."""
    if kind == 'exp':
        return rise(u, 4)
    if kind == 'step':
        return 0.3 + (rise((u - 0.4) / 0.6, 5) if u >= 0.4 else 0)
    if kind == 'linear':
        return 1.5 * u
    # bump: half again the level around u = 0.2, gone by u = 0.4, then the rise; raised: the same
    # over a level that rises by a quarter in the first 5 % and stays.
    floor = 0.25 * min(1.0, u / 0.05) if kind == 'raised' else 0.0
    return floor + 0.5 * math.exp(-((u - 0.2) / 0.08) ** 2) + (rise((u - 0.5) / 0.5, 5) if u >= 0.5 else 0)


def bearing(rng, n, onset, kind):
    out, x, drift = [], 0.0, 0.0
    k = 0.004 * math.sqrt(1 - 0.8 * 0.8)
    for i in range(n):
        x = 0.8 * x + k * rng.gauss(0, 1)
        drift += rng.gauss(0, 0.00005)
        f = degradation(kind, (i - onset) / (n - onset)) if i >= onset else 0.0
        out.append((0.1 + drift) * (1 + f) + x * (1 + f))
    return out


def write(path, step, columns):
    with open(path, 'w') as f:
        f.write('timestamp,' + (','.join(f's{i}' for i in range(len(columns))) if len(columns) > 1 else 'value') + '\n')
        for i in range(len(columns[0])):
            stamp = (T0 + dt.timedelta(seconds=i * step)).strftime('%Y-%m-%d %H:%M:%S')
            f.write(stamp + ',' + ','.join('%.6g' % c[i] for c in columns) + '\n')


def generate(directory, seed):
    files = []
    for r, (step, days, degrading) in enumerate(RUNS):
        n = days * DAY // step
        onset = n - degrading * DAY // step
        for j, kind in enumerate(KINDS):
            for layout in ('solo', 'rig'):
                rng = random.Random(seed * 1000 + r * 100 + j * 10 + (layout == 'rig'))
                columns = [bearing(rng, n, onset, kind)]
                if layout == 'rig':
                    columns += [bearing(rng, n, n, kind) for _ in range(3)]
                path = os.path.join(directory, f'{layout}-{kind}_{step}s_{days}d_seed{seed}.csv')
                write(path, step, columns)
                files.append(dict(layout=layout, kind=kind, step=step, days=days, onset=onset, path=path))
    return files


def replay(binary, f):
    out = subprocess.run([binary, 'detect', '--replay', f['path']], capture_output=True, text=True, check=True).stdout
    rows = [line.split(',') for line in out.splitlines()[1:]]
    alert = [r[2] == '1' for r in rows]
    active = [r[3] == '1' for r in rows]
    false = sum(1 for i, a in enumerate(alert) if a and i < f['onset'])
    lead = None
    if active and active[-1]:
        j = len(active) - 1
        while j > 0 and active[j - 1]:
            j -= 1
        lead = (len(active) - 1 - j) * f['step'] / 3600
    return dict(f, false=false, lead=lead, healthy_days=f['onset'] * f['step'] / DAY)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('binary')
    ap.add_argument('--seeds', default='1,2,3')
    ap.add_argument('--dir', default='')
    a = ap.parse_args()
    directory = a.dir or tempfile.mkdtemp(prefix='forewarn-rtf-')
    os.makedirs(directory, exist_ok=True)
    files = []
    for seed in map(int, a.seeds.split(',')):
        files += generate(directory, seed)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        res = list(ex.map(lambda f: replay(a.binary, f), files))
    print(f'runs to failure, seeds {a.seeds}: the alert open at the failure (the last reading), files in {directory}')
    print(f'| layout | shape | failures | alert open at failure | lead, h: min / median | lead >= {LEAD_H} h '
          '| openings before the onset | per healthy machine-day |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- |')
    for layout in ('solo', 'rig'):
        for kind in KINDS:
            part = [r for r in res if r['layout'] == layout and r['kind'] == kind]
            leads = [r['lead'] for r in part if r['lead'] is not None]
            spread = f'{min(leads):.1f} / {statistics.median(leads):.1f}' if leads else '—'
            false = sum(r['false'] for r in part)
            days = sum(r['healthy_days'] for r in part)
            print(f'| {layout} | {kind} | {len(part)} | {len(leads)} | {spread} | {sum(1 for x in leads if x >= LEAD_H)} '
                  f'| {false} | {false / days:.3f} |')
    leads = [r['lead'] for r in res if r['lead'] is not None]
    false = sum(r['false'] for r in res)
    days = sum(r['healthy_days'] for r in res)
    print(f'all: {len(leads)} of {len(res)} failures with an alert open, {sum(1 for x in leads if x >= LEAD_H)} of them '
          f'with >= {LEAD_H} h lead; {false} openings before the onset over {days:.0f} healthy machine-days, '
          f'{false / days:.3f} per machine-day')


if __name__ == '__main__':
    sys.exit(main())
