import BakeoffCore

extension TimeSeries {
    /// JSON (`"schema": "bakeoff.timeseries/1"`): per daily cut, the users per variant, the sample-ratio p, the
    /// decision, and every metric result exactly as the report's JSON writes it (`bakeoff.report/2`'s
    /// `metrics` entries), so each point can be compared with `bakeoff analyze --until` at its cut.
    public func renderJSON() -> String {
        var w = JSONWriter()
        w.object { w in
            w.value("schema", "bakeoff.timeseries/1")
            w.value("experiment", experiment)
            w.array("points") { w in
                for p in points {
                    w.object { w in
                        w.value("until", formatTimestamp(p.cut))
                        w.array("variants") { w in
                            for v in p.report.variants {
                                w.object { w in w.value("name", v.name); w.value("users", v.users) }
                            }
                        }
                        w.value("sample_ratio_p_value", p.report.sampleRatio.pValue)
                        w.value("decision", p.report.decision.action.rawValue)
                        w.array("metrics") { w in for r in p.report.results { p.report.writeMetric(&w, r) } }
                    }
                }
            }
            w.array("skipped") { w in
                for s in skipped {
                    w.object { w in w.value("until", formatTimestamp(s.cut)); w.value("reason", s.reason) }
                }
            }
        }
        return w.text + "\n"
    }
}
