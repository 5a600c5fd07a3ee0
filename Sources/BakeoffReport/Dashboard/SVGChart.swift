import Foundation
import BakeoffCore

/// Colours safe for colour-blind readers (Okabe and Ito), used by every chart and badge of the dashboard.
///
/// Better and worse are blue and vermillion, never green and red, and always come with a word or a marker.
package enum Palette {
    package static let better = "#0072B2"
    package static let worse = "#D55E00"
    package static let neutral = "#6e7781"
    package static let ink = "#1b1f24"
    package static let grid = "#d0d7de"
    /// One colour per variant, control first.
    package static let variants = ["#3b3b3b", "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]

    package static func variant(_ index: Int) -> String { variants[index % variants.count] }
}

/// A line chart drawn as inline SVG on the server: axes with ticks, labels and units, a legend, optional
/// bands (confidence intervals) and vertical markers (plan changes). No script, no external file.
package struct LineChart {
    package struct Series {
        package var name: String
        package var color: String
        package var dashed = false
        /// (x, y); a nil y leaves a gap.
        package var points: [(x: Double, y: Double?)]
        /// (x, lower, upper), drawn as a shaded band behind the line.
        package var band: [(x: Double, lower: Double, upper: Double)] = []

        package init(name: String, color: String, dashed: Bool = false, points: [(x: Double, y: Double?)],
                     band: [(x: Double, lower: Double, upper: Double)] = []) {
            self.name = name
            self.color = color
            self.dashed = dashed
            self.points = points
            self.band = band
        }
    }

    package var title: String
    package var xLabel: String
    package var yLabel: String
    /// Formats a y value for ticks and the last point's label.
    package var yFormat: (Double) -> String
    /// Formats an x value (microseconds since 1970 for days) for ticks.
    package var xFormat: (Double) -> String
    package var series: [Series]
    package var markers: [(x: Double, label: String)] = []
    /// Draws y = 0 as a reference line (lift charts).
    package var zeroLine = false
    /// A horizontal reference line with its label (a planned share).
    package var reference: (y: Double, label: String)?
    package var width = 480.0
    package var height = 250.0

    package init(title: String, xLabel: String, yLabel: String, yFormat: @escaping (Double) -> String,
                 xFormat: @escaping (Double) -> String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.yFormat = yFormat
        self.xFormat = xFormat
        self.series = series
    }

    package func render() -> String {
        let left = 68.0, right = 26.0, top = 16.0, bottom = 46.0
        let (legend, row) = legendPlaces(series.map { 30 + Double($0.name.count) * 7 }, from: left, to: width - right)
        let legendHeight = series.isEmpty ? 0 : Double(row + 1) * 18
        let height = self.height + max(0, legendHeight - 20)
        let plotW = width - left - right, plotH = height - top - bottom - legendHeight
        var xs: [Double] = [], ys: [Double] = []
        for s in series {
            for p in s.points { xs.append(p.x); if let y = p.y { ys.append(y) } }
            for b in s.band { xs.append(b.x); ys.append(b.lower); ys.append(b.upper) }
        }
        for m in markers { xs.append(m.x) }
        if zeroLine { ys.append(0) }
        if let r = reference { ys.append(r.y) }
        let label = "\(title): \(yLabel) by \(xLabel)"
        guard let xMin = xs.min(), let xMax = xs.max(), let yMin0 = ys.min(), let yMax0 = ys.max() else {
            return "<svg viewBox=\"0 0 \(Int(width)) 60\" role=\"img\" aria-label=\"\(escapeHTML(label)): no data yet\"><text x=\"\(Int(width / 2))\" y=\"34\" text-anchor=\"middle\" class=\"muted\">no data yet</text></svg>"
        }
        let ticks = Self.niceTicks(yMin0, yMax0, count: 5)
        let yMin = min(yMin0, ticks.first ?? yMin0), yMax = max(yMax0, ticks.last ?? yMax0)
        let xSpan = xMax > xMin ? xMax - xMin : 1
        let ySpan = yMax > yMin ? yMax - yMin : 1
        func px(_ x: Double) -> Double { xMax > xMin ? left + (x - xMin) / xSpan * plotW : left + plotW / 2 }
        func py(_ y: Double) -> Double { top + (1 - (y - yMin) / ySpan) * plotH }
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(escapeHTML(label))\">"
        svg += "<title>\(escapeHTML(label))</title>"
        // Grid and y ticks.
        for t in ticks {
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\" stroke=\"\(Palette.grid)\" stroke-width=\"1\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\" class=\"tick\">\(escapeHTML(yFormat(t)))</text>"
        }
        if zeroLine, yMin <= 0, yMax >= 0 {
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(0)))\" y2=\"\(f(py(0)))\" stroke=\"\(Palette.ink)\" stroke-width=\"1.2\"/>"
        }
        if let r = reference {
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(r.y)))\" y2=\"\(f(py(r.y)))\" stroke=\"\(Palette.ink)\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"/>"
            let labelY = py(r.y) - 5 < top + 8 ? py(r.y) + 14 : py(r.y) - 5
            svg += "<text x=\"\(f(left + plotW - 4))\" y=\"\(f(labelY))\" text-anchor=\"end\" class=\"tick\">\(escapeHTML(r.label))</text>"
        }
        // X ticks: at most 6, at the data's own x values.
        // At most about six labels, never closer than 56 units (uneven days included), the last one always.
        let distinct = Array(Set(xs)).sorted()
        var labelled: [Double] = []
        for x in distinct.reversed() where labelled.allSatisfy({ abs(px($0) - px(x)) >= 56 }) && labelled.count < 7 {
            labelled.append(x)
        }
        for x in labelled {
            svg += "<text x=\"\(f(px(x)))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\" class=\"tick\">\(escapeHTML(xFormat(x)))</text>"
        }
        svg += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH))\" stroke=\"\(Palette.neutral)\"/>"
        svg += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH + 34))\" text-anchor=\"middle\" class=\"axis\">\(escapeHTML(xLabel))</text>"
        svg += "<text transform=\"translate(14 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\" class=\"axis\">\(escapeHTML(yLabel))</text>"
        // Plan changes.
        for m in markers {
            svg += "<line x1=\"\(f(px(m.x)))\" x2=\"\(f(px(m.x)))\" y1=\"\(f(top))\" y2=\"\(f(top + plotH))\" stroke=\"\(Palette.ink)\" stroke-dasharray=\"2 3\"><title>\(escapeHTML(m.label))</title></line>"
            svg += "<text x=\"\(f(px(m.x) + 3))\" y=\"\(f(top + 10))\" class=\"tick\">plan change</text>"
        }
        // Bands, then lines, then points.
        for s in series where s.band.count > 0 {
            let upper = s.band.map { "\(f(px($0.x))),\(f(py($0.upper)))" }
            let lower = s.band.reversed().map { "\(f(px($0.x))),\(f(py($0.lower)))" }
            if s.band.count == 1, let b = s.band.first {
                svg += "<line x1=\"\(f(px(b.x)))\" x2=\"\(f(px(b.x)))\" y1=\"\(f(py(b.lower)))\" y2=\"\(f(py(b.upper)))\" stroke=\"\(s.color)\" stroke-opacity=\"0.5\" stroke-width=\"6\"/>"
            } else {
                svg += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(s.color)\" fill-opacity=\"0.16\" stroke=\"none\"/>"
            }
        }
        for s in series {
            var segments: [[String]] = [[]]
            for p in s.points {
                if let y = p.y { segments[segments.count - 1].append("\(f(px(p.x))),\(f(py(y)))") } else if !(segments.last ?? []).isEmpty { segments.append([]) }
            }
            for seg in segments where seg.count > 1 {
                svg += "<polyline points=\"\(seg.joined(separator: " "))\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")/>"
            }
            for p in s.points {
                guard let y = p.y else { continue }
                svg += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(y)))\" r=\"2.6\" fill=\"\(s.color)\"><title>\(escapeHTML(s.name)) \(escapeHTML(xFormat(p.x))): \(escapeHTML(yFormat(y)))</title></circle>"
            }
        }
        // Legend (a series without a name, such as the second half of a pair, has none).
        for (s, place) in zip(series, legend) where !s.name.isEmpty {
            let lx = place.x, ly = height - 8 - Double(legend.last!.row - place.row) * 18
            svg += "<line x1=\"\(f(lx))\" x2=\"\(f(lx + 18))\" y1=\"\(f(ly - 4))\" y2=\"\(f(ly - 4))\" stroke=\"\(s.color)\" stroke-width=\"2.5\"\(s.dashed ? " stroke-dasharray=\"5 3\"" : "")/>"
            if !s.band.isEmpty {
                svg += "<rect x=\"\(f(lx))\" y=\"\(f(ly - 10))\" width=\"18\" height=\"12\" fill=\"\(s.color)\" fill-opacity=\"0.16\"/>"
            }
            svg += "<text x=\"\(f(lx + 22))\" y=\"\(f(ly))\" class=\"tick\">\(escapeHTML(s.name))</text>"
        }
        return svg + "</svg>"
    }

    /// Round tick values covering [lo, hi].
    package static func niceTicks(_ lo: Double, _ hi: Double, count: Int, integers: Bool = false) -> [Double] {
        var lo = lo, hi = hi
        if hi - lo < 1e-12 {
            let pad = max(abs(lo) * 0.1, 1e-6)
            lo -= pad
            hi += pad
        }
        let raw = (hi - lo) / Double(max(1, count - 1))
        let magnitude = pow10(floor(log10(raw)))
        var step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        if integers { step = max(1, step.rounded(.up)) }
        let first = floor(lo / step) * step
        var ticks: [Double] = []
        var t = first
        while t <= hi + step * 0.5 && ticks.count < 12 {
            ticks.append(abs(t) < step * 1e-9 ? 0 : t)
            t += step
        }
        return ticks
    }

    private static func pow10(_ e: Double) -> Double {
        var r = 1.0
        if e >= 0 { for _ in 0..<Int(e) { r *= 10 } } else { for _ in 0..<Int(-e) { r /= 10 } }
        return r
    }
}

/// Grouped bars per day and variant (new users per day), as inline SVG.
package struct BarChart {
    package var title: String
    package var xLabel: String
    package var yLabel: String
    package var xFormat: (Double) -> String
    /// Per x (a day), the value of each group in `groups` order.
    package var bars: [(x: Double, values: [Double])]
    package var groups: [(name: String, color: String)]
    package var width = 480.0
    package var height = 250.0

    package init(title: String, xLabel: String, yLabel: String, xFormat: @escaping (Double) -> String,
                 bars: [(x: Double, values: [Double])], groups: [(name: String, color: String)]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.xFormat = xFormat
        self.bars = bars
        self.groups = groups
    }

    package func render() -> String {
        let left = 68.0, right = 26.0, top = 12.0
        let (legend, row) = legendPlaces(groups.map { 28 + Double($0.name.count) * 7 }, from: left, to: width - right)
        let bottom = 48.0 + Double(row + 1) * 18
        let height = self.height + Double(row) * 18
        let plotW = width - left - right, plotH = height - top - bottom
        let label = "\(title): \(yLabel) by \(xLabel)"
        let top0 = bars.flatMap(\.values).max() ?? 0
        guard !bars.isEmpty, top0 > 0 else {
            return "<svg viewBox=\"0 0 \(Int(width)) 60\" role=\"img\" aria-label=\"\(escapeHTML(label)): no data yet\"><text x=\"\(Int(width / 2))\" y=\"34\" text-anchor=\"middle\" class=\"muted\">no data yet</text></svg>"
        }
        let ticks = LineChart.niceTicks(0, top0, count: 5, integers: true)
        let yMax = max(top0, ticks.last ?? top0)
        func py(_ y: Double) -> Double { top + (1 - y / yMax) * plotH }
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(escapeHTML(label))\"><title>\(escapeHTML(label))</title>"
        for t in ticks {
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\" stroke=\"\(Palette.grid)\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\" class=\"tick\">\(escapeHTML(group(Int(t.rounded()))))</text>"
        }
        let slot = plotW / Double(bars.count)
        let barW = max(1, slot * 0.8 / Double(max(1, groups.count)))
        let step = max(1, Int((Double(bars.count) / 6).rounded(.up)))
        for (i, b) in bars.enumerated() {
            let x0 = left + Double(i) * slot + slot * 0.1
            for (g, v) in b.values.enumerated() where g < groups.count {
                svg += "<rect x=\"\(f(x0 + Double(g) * barW))\" y=\"\(f(py(v)))\" width=\"\(f(barW))\" height=\"\(f(max(0, top + plotH - py(v))))\" fill=\"\(groups[g].color)\"><title>\(escapeHTML(groups[g].name)) \(escapeHTML(xFormat(b.x))): \(group(Int(v)))</title></rect>"
            }
            if i % step == 0 || i == bars.count - 1, i == bars.count - 1 || bars.count - 1 - i >= step {
                svg += "<text x=\"\(f(left + (Double(i) + 0.5) * slot))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\" class=\"tick\">\(escapeHTML(xFormat(b.x)))</text>"
            }
        }
        svg += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH))\" stroke=\"\(Palette.neutral)\"/>"
        svg += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH + 34))\" text-anchor=\"middle\" class=\"axis\">\(escapeHTML(xLabel))</text>"
        svg += "<text transform=\"translate(14 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\" class=\"axis\">\(escapeHTML(yLabel))</text>"
        for (g, place) in zip(groups, legend) {
            let ly = height - 8 - Double(row - place.row) * 18
            svg += "<rect x=\"\(f(place.x))\" y=\"\(f(ly - 10))\" width=\"12\" height=\"12\" fill=\"\(g.color)\"/>"
            svg += "<text x=\"\(f(place.x + 16))\" y=\"\(f(ly))\" class=\"tick\">\(escapeHTML(g.name))</text>"
        }
        return svg + "</svg>"
    }
}

private func f(_ v: Double) -> String { fixed(v, 1) }

/// Where each legend entry of the given widths goes: wrapped onto as many rows as they need between `from`
/// and `to`; the last row's number.
private func legendPlaces(_ widths: [Double], from left: Double, to right: Double) -> (places: [(x: Double, row: Int)], lastRow: Int) {
    var places: [(x: Double, row: Int)] = []
    var x = left, row = 0
    for w in widths {
        if x + w > right && x > left { x = left; row += 1 }
        places.append((x, row))
        x += w
    }
    return (places, row)
}
