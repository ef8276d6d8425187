// The visual evaluation report: one self-contained HTML page (inline CSS, SVG and a few lines
// of script; no server, no network), a sortable table of files on top and one chart per file
// with its signal(s), the detector's score, the alert threshold, the alert spans, the label
// windows and the part that is not scored.
import Foundation

public struct ReportRow: Sendable {
    public var file: String
    public var group: String
    /// The benchmark's per-file score (NAB normalised standard score, SKAB point F1).
    public var score: Double
    public var falseOpenings: Int
    public var days: Double
    /// Further columns, in `HTMLReport.extraColumns` order.
    public var extra: [String]
    public var trace: FileTrace

    public init(file: String, group: String, score: Double, falseOpenings: Int, days: Double, extra: [String], trace: FileTrace) {
        self.file = file
        self.group = group
        self.score = score
        self.falseOpenings = falseOpenings
        self.days = days
        self.extra = extra
        self.trace = trace
    }
}

public enum HTMLReport {
    static let width = 1100.0
    static let signalHeight = 150.0
    static let scoreHeight = 80.0

    /// The whole page. `summary` lines are shown as preformatted text above the table.
    public static func page(title: String, summary: [String], scoreName: String, extraColumns: [String],
                            rows: [ReportRow], threshold: Double) -> String {
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(esc(title))</title>
        <style>
        body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
        table{border-collapse:collapse}th,td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}
        th{cursor:pointer;background:#f2f2f2}td:first-child,th:first-child,td:nth-child(2){text-align:left}
        pre{background:#f7f7f7;padding:.6em}section{margin-top:2em}
        .signal{fill:none;stroke-width:1}.score{fill:none;stroke:#c0392b;stroke-width:1}
        .threshold{stroke:#c0392b;stroke-dasharray:4 3}.label{fill:#f1c40f;fill-opacity:.35}
        .alert{fill:#e74c3c;fill-opacity:.25}.unscored{fill:#999;fill-opacity:.15}.legend{font-size:11px}
        </style></head><body>
        <h1>\(esc(title))</h1>
        <pre>\(esc(summary.joined(separator: "\n")))</pre>
        <p>Click a column heading to sort. Yellow: label windows; red: alert open; grey: not scored (warm-up).</p>
        <table id="files"><thead><tr><th data-type="text">file</th><th data-type="text">group</th>
        <th data-type="num">\(esc(scoreName))</th><th data-type="num">false openings</th><th data-type="num">per day</th>
        """
        for c in extraColumns { h += "<th data-type=\"num\">\(esc(c))</th>" }
        h += "</tr></thead><tbody>\n"
        for (i, r) in rows.enumerated() {
            let perDay = r.days > 0 ? Double(r.falseOpenings) / r.days : 0
            h += "<tr><td><a href=\"#chart-\(i)\">\(esc(r.file))</a></td><td>\(esc(r.group))</td>"
            h += "<td>\(fmt(r.score, 3))</td><td>\(r.falseOpenings)</td><td>\(fmt(perDay, 3))</td>"
            for e in r.extra { h += "<td>\(esc(e))</td>" }
            h += "</tr>\n"
        }
        h += "</tbody></table>\n"
        for (i, r) in rows.enumerated() { h += chart(id: "chart-\(i)", row: r, threshold: threshold) }
        h += """
        <script>
        document.querySelectorAll('#files th').forEach(function(th, col){
          th.addEventListener('click', function(){
            var body = document.querySelector('#files tbody');
            var rows = Array.prototype.slice.call(body.rows);
            var num = th.dataset.type === 'num';
            var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
            rows.sort(function(a, b){
              var x = a.cells[col].textContent, y = b.cells[col].textContent;
              return dir * (num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y));
            });
            rows.forEach(function(r){ body.appendChild(r); });
          });
        });
        </script>
        </body></html>

        """
        return h
    }

    /// One file's chart: signals on top (each column scaled to its own range), score below.
    static func chart(id: String, row r: ReportRow, threshold: Double) -> String {
        let t = r.trace
        let n = t.series.count
        let total = signalHeight + scoreHeight + 20
        func x(_ i: Int) -> Double { n <= 1 ? 0 : Double(i) / Double(n - 1) * width }
        var s = "<section id=\"\(id)\"><h2>\(esc(r.file))</h2>\n"
        s += "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(total))\" viewBox=\"0 0 \(Int(width)) \(Int(total))\">\n"
        if t.scoredFrom > 0 {
            s += "<rect class=\"unscored\" x=\"0\" y=\"0\" width=\"\(fmt(x(min(t.scoredFrom, n - 1)), 1))\" height=\"\(Int(total))\"/>\n"
        }
        for w in t.labels {
            s += "<rect class=\"label\" x=\"\(fmt(x(w.start), 1))\" y=\"0\" width=\"\(fmt(max(x(w.end) - x(w.start), 1), 1))\" height=\"\(Int(total))\"/>\n"
        }
        for span in alertSpans(t.replay.active) {
            s += "<rect class=\"alert\" x=\"\(fmt(x(span.start), 1))\" y=\"0\" width=\"\(fmt(max(x(span.end) - x(span.start), 1), 1))\" height=\"\(Int(total))\"/>\n"
        }
        let colours = ["#2c3e50", "#2980b9", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#c71585"]
        for (j, name) in t.series.columns.enumerated() {
            let values = t.series.values.map { $0[j] }
            s += "<polyline class=\"signal\" data-column=\"\(esc(name))\" stroke=\"\(colours[j % colours.count])\" points=\"\(points(values, top: 2, height: signalHeight - 4))\"/>\n"
        }
        let scoreTop = signalHeight + 10
        s += "<polyline class=\"score\" points=\"\(points(t.replay.rows.map(\.score), top: scoreTop, height: scoreHeight, range: (0, 1)))\"/>\n"
        let ty = scoreTop + scoreHeight * (1 - threshold)
        s += "<line class=\"threshold\" x1=\"0\" x2=\"\(Int(width))\" y1=\"\(fmt(ty, 1))\" y2=\"\(fmt(ty, 1))\"/>\n"
        s += "<text class=\"legend\" x=\"4\" y=\"\(fmt(scoreTop + 10, 1))\">score (threshold \(fmt(threshold, 2)))</text>\n"
        s += "<text class=\"legend\" x=\"4\" y=\"12\">\(esc(t.series.columns.joined(separator: ", ")))</text>\n"
        s += "</svg></section>\n"
        return s
    }

    /// Rows where `active` runs, as inclusive spans.
    static func alertSpans(_ active: [Bool]) -> [RowWindow] { SKABScorer.labelRuns(active) }

    /// Polyline points, at most two per horizontal pixel (the bucket's min and max), so a long
    /// file stays small and a one-row spike still shows.
    static func points(_ v: [Double], top: Double, height: Double, range: (Double, Double)? = nil) -> String {
        let finite = v.filter(\.isFinite)
        guard !finite.isEmpty else { return "" }
        let lo = range?.0 ?? finite.min()!, hi = range?.1 ?? finite.max()!
        let span = hi > lo ? hi - lo : 1
        func y(_ a: Double) -> String { fmt(top + height * (1 - (min(max(a, lo), hi) - lo) / span), 1) }
        let buckets = Int(width)
        var out: [String] = []
        out.reserveCapacity(min(v.count, 2 * buckets))
        let n = v.count
        var i = 0
        while i < n {
            let b = n <= buckets ? i : i * buckets / n
            var j = i
            var mn = Double.infinity, mx = -Double.infinity, first = -1, last = -1
            while j < n && (n <= buckets ? j == i : j * buckets / n == b) {
                if v[j].isFinite { mn = min(mn, v[j]); mx = max(mx, v[j]); if first < 0 { first = j }; last = j }
                j += 1
            }
            if first >= 0 {
                let px = fmt(n <= 1 ? 0 : Double(i) / Double(n - 1) * width, 1)
                if mn == mx { out.append("\(px),\(y(mn))") } else {
                    let up = v[first] <= v[last]
                    out.append("\(px),\(y(up ? mn : mx))")
                    out.append("\(px),\(y(up ? mx : mn))")
                }
            }
            i = j
        }
        return out.joined(separator: " ")
    }

    static func esc(_ s: String) -> String {
        var o = ""
        for c in s {
            switch c {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            default: o.append(c)
            }
        }
        return o
    }

    static func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
}
