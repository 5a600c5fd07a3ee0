import BakeoffTracking
import Testing

@Suite("Keys and values as MLflow takes them")
struct TrackingRecordTests {
    @Test func partsKeepMLflowsCharactersAndReplaceTheRest() {
        #expect(MLflowKey.make(["task_completion", "treatment", "lift"]) == "task_completion/treatment/lift")
        #expect(MLflowKey.make(["a:b", "ü=1", "x y.z-w"]) == "a_b/__1/x y.z-w")
    }

    @Test func partsThatWouldNameAnotherFileAreReplaced() {
        // MLflow refuses "a//b", "./a" and "a/..": they resolve to other names.
        #expect(MLflowKey.make(["", "metric"]) == "_/metric")
        #expect(MLflowKey.make([".", "..", "a/b"]) == "_/_/a_b")
    }

    @Test func aLongKeyIsCutToTheLimitWithAHashThatKeepsKeysApart() {
        let a = MLflowKey.make([String(repeating: "m", count: 300), "treatment", "lift"])
        let b = MLflowKey.make([String(repeating: "m", count: 300), "treatment", "p_value"])
        #expect(a.count == MLflowLimits.keyLength && b.count == MLflowLimits.keyLength)
        #expect(a != b)
        #expect(a.hasPrefix(String(repeating: "m", count: 241) + "_"))
    }

    @Test func valuesAreCutToTheirLimitAndTheKeyIsNamed() {
        var b = RecordBuilder(runName: "r", experiment: "e")
        b.param(["prompt"], String(repeating: "x", count: 7000))
        b.tag(["bakeoff.note"], String(repeating: "é", count: 9000))
        b.param(["short"], "fine")
        #expect(b.record.params[0].value.unicodeScalars.count == MLflowLimits.paramValueLength)
        #expect(b.record.params[0].value.hasSuffix("…"))
        // MLflow counts characters as Python does (code points), not bytes.
        #expect(b.record.tags[0].value.unicodeScalars.count == MLflowLimits.tagValueLength)
        #expect(b.record.truncated == ["prompt", "bakeoff.note"])
    }

    @Test func missingAndNonFiniteNumbersAreLeftOut() {
        var b = RecordBuilder(runName: "r", experiment: "e")
        b.metric(["a"], nil as Double?)
        b.metric(["b"], Double.nan)
        b.metric(["c"], Double.infinity)
        b.metric(["d"], 0.25)
        b.param(["e"], nil as String?)
        #expect(b.record.metrics == [.init("d", 0.25)])
        #expect(b.record.params.isEmpty)
    }

    @Test func aKeyGivenTwiceIsKeptOnceOrNumberedWhenItsValueDiffers() {
        var b = RecordBuilder(runName: "r", experiment: "e")
        b.metric(["m", "control", "mean"], 0.5)
        b.metric(["m", "control", "mean"], 0.5)  // the control's mean, once per treatment arm
        b.metric(["m", "a:b", "mean"], 0.1)
        b.metric(["m", "a_b", "mean"], 0.2)      // another variant, the same key once made valid
        b.param(["m", "control", "mean"], "x")   // params have names of their own
        #expect(b.record.metrics.map(\.key) == ["m/control/mean", "m/a_b/mean", "m/a_b/mean_2"])
        #expect(b.record.params.map(\.key) == ["m/control/mean"])
    }

    @Test func numbersAsParamsReadAsWritten() {
        var b = RecordBuilder(runName: "r", experiment: "e")
        b.param(["alpha"], 0.05)
        b.param(["days"], 14.0)
        b.param(["users"], 1200)
        #expect(b.record.params.map(\.value) == ["0.05", "14", "1200"])
    }

    @Test func anExperimentWithoutANameGoesIntoBakeoff() {
        #expect(TrackingRecord(runName: "r", experiment: "").experiment == "bakeoff")
    }
}
