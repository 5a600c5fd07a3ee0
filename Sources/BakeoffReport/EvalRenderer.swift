import BakeoffCore
import BakeoffEval
import Foundation

extension EvalReport {
    /// The report as a table for a terminal, Markdown, JSON (`bakeoff.eval/1`) or an HTML page.
    public func render(_ format: ReportFormat) -> String {
        switch format {
        case .table: return renderText(markdown: false)
        case .markdown: return renderText(markdown: true)
        case .json: return renderJSON()
        case .html: return renderHTML()
        }
    }

    var hasCost: Bool { calls.contains { $0.meanCostUSD != nil } }

    var holmText: String {
        let n = scores.count + winRates.count
        return n == 1 ? "one comparison, no correction needed" : "Holm across \(n) comparisons"
    }

    var confidenceLabel: String { "\(formatNumber((1 - alpha) * 100))% CI" }

    private func renderText(markdown: Bool) -> String {
        let name: (String) -> String = { markdown ? ClientText.markdownName($0) : ClientText.terminal($0) }
        let prose: (String) -> String = { markdown ? ClientText.markdownProse($0) : wrap(ClientText.terminal($0)) }
        let bold = markdown ? "**" : ""
        func heading(_ text: String) -> String { markdown ? "### \(text)\n\n" : "\(text)\n" + String(repeating: "-", count: min(78, text.count)) + "\n" }
        func table(_ header: [String], _ rows: [[String]]) -> String { markdown ? markdownTable(header, rows) : renderTable(header, rows) }
        var out = ""
        let title = "Bakeoff offline eval: \(name(experiment))"
        out += markdown ? "## \(title)\n\n" : "\(title)\n" + String(repeating: "=", count: min(78, title.count)) + "\n"
        let variantList = ([control] + variants.indices.filter { $0 != control }).map { $0 == control ? "\(name(variants[$0])) (control)" : name(variants[$0]) }.joined(separator: ", ")
        out += prose("\(group(requests)) requests from \(dataset); variants \(variantList)\(repetitions > 1 ? "; \(repetitions) answers per request and variant" : ""). Paired by request; \(confidenceLabel)s; \(holmText); primary: \(primary).") + "\n\n"

        let d = decision
        out += bold + prose("Decision: \(d.action.rawValue)\(d.action == .promote || d.action == .doNotPromote ? " \(d.variant)" : "")") + bold + "\n"
        func bullet(_ text: String) -> String {
            markdown ? "- " + prose(text) + "\n" : wrap("  - " + ClientText.terminal(text), indent: "    ") + "\n"
        }
        for r in d.reasons { out += bullet(r) }
        if let n = d.requestsNeeded { out += bullet("about \(group(n)) requests in all would detect it (\(formatNumber(power * 100))% power)") }
        if let users = d.liveUsersPerGroup { out += bullet("the live A/B needs \(group(users)) users per group (bakeoff plan)") }
        if let hint = d.livePlanHint { out += bullet(hint) }
        out += "\n"

        if !winRates.isEmpty {
            out += heading("Pairwise judge (each request judged in both orders; a verdict that flips is a tie)")
            let header = ["Judge", "variant", "win rate [\(confidenceLabel)]", "W/T/L requests", "sign test p", "Holm p", "first pos.", "flips"]
            let rows = winRates.map { w in
                [name(w.scorer), name(w.variant), "\(evalPercent(w.winRate)) [\(evalPercent(w.ciLow)), \(evalPercent(w.ciHigh))]",
                 "\(w.wins)/\(w.ties)/\(w.losses)", formatP(w.pValue), w.adjustedPValue.map(formatP) ?? "", w.firstPositionRate.map(evalPercent) ?? "n/a",
                 w.flipRate.map(evalPercent) ?? "n/a"]
            }
            out += table(header, rows) + "\n"
        }
        for r in rankings {
            out += heading("Bradley-Terry ranking by \(name(r.scorer)) (strength: log-odds of beating \(name(variants[control])))")
            let header = ["Variant", "strength [\(confidenceLabel)]", "beats control"]
            let rows = r.entries.sorted { $0.strength > $1.strength }.map { e in
                [name(e.variant), evalSigned(e.strength) + (e.ciLow.map { " [\(evalSigned($0)), \(evalSigned(e.ciHigh!))]" } ?? ""), evalPercent(e.winProbability)]
            }
            out += table(header, rows)
            if r.skippedResamples > 0 { out += prose("\(r.skippedResamples) resamples could not be fitted (a variant never won or never lost in them).") + "\n" }
            out += "\n"
        }
        if !humanAgreement.isEmpty {
            out += heading("People against the judge (imported labels; kappa over win/tie/loss per request)")
            let header = ["Judge", "variant", "labels", "people's win rate [\(confidenceLabel)]", "judge's (same requests)", "agreement", "Cohen's kappa [\(confidenceLabel)]"]
            var rows: [[String]] = []
            for h in humanAgreement {
                let who: String = name(h.scorer ?? "people")
                let human: String = h.human.map { "\(evalPercent($0.winRate)) [\(evalPercent($0.ciLow)), \(evalPercent($0.ciHigh))]" } ?? "n/a"
                let judge: String = h.judge.map { evalPercent($0.winRate) } ?? "n/a"
                let agreement: String = h.percentAgreement.map { evalPercent($0) } ?? "n/a"
                let kappa: String = h.kappa.map { "\(fixed($0.kappa, 2)) [\(fixed($0.ciLow, 2)), \(fixed($0.ciHigh, 2))]" } ?? "n/a"
                rows.append([who, name(h.variant), "\(group(h.labels)) by \(h.labelers)", human, judge, agreement, kappa])
            }
            out += table(header, rows) + "\n"
        }
        if !scores.isEmpty {
            out += heading("Scorers (per request: mean over its answers)")
            let header = ["Scorer", "variant", variants[control].isEmpty ? "control" : name(variants[control]), "variant mean", "difference [\(confidenceLabel)]", "test", "p", "Holm p", "Wilcoxon p"]
            let rows = scores.map { c in
                [name(c.name), name(c.variant), evalNumber(c.controlMean), evalNumber(c.variantMean),
                 "\(evalSigned(c.difference)) [\(evalSigned(c.ciLow)), \(evalSigned(c.ciHigh))]",
                 c.binary ? "McNemar \(c.onlyVariant!)/\(c.onlyControl!)" : "paired t", formatP(c.pValue), c.adjustedPValue.map(formatP) ?? "",
                 c.wilcoxonP.map(formatP) ?? ""]
            }
            out += table(header, rows) + "\n"
        }
        if !guardrails.isEmpty {
            out += heading("Guardrails")
            let rows = guardrails.map { g in
                [name(g.name), name(g.variant), g.state.rawValue, evalSigned(g.worsening), evalSigned(g.worstCase), g.marginText]
            }
            out += table(["Guardrail", "variant", "state", "worse by", "worst case", "margin"], rows) + "\n"
        }
        out += heading("Calls")
        func n(_ x: Double?) -> String { x.map { evalNumber($0) } ?? "n/a" }
        var callRows: [[String]] = []
        for c in calls {
            var row: [String] = [name(c.variant), group(c.answers), group(c.failed), group(c.cached), group(c.retries)]
            row += [n(c.meanLatencyMs), n(c.p95LatencyMs), n(c.meanTTFTMs), n(c.meanInputTokens), n(c.meanOutputTokens)]
            if hasCost { row.append(n(c.meanCostUSD.map { $0 * 1000 })) }
            callRows.append(row)
        }
        out += table(["Variant", "answers", "failed", "cached", "retries", "latency ms", "p95 ms", "TTFT ms", "tokens in", "tokens out"] + (hasCost ? ["$ per 1k req"] : []), callRows)
        for c in calls where c.failed > 0 {
            out += prose("\(c.variant): \(c.failed) of \(c.answers) answers failed\(c.commonError.map { "; most often: \($0)" } ?? "")") + "\n"
        }
        for p in judgeProblems where p.failed + p.unparseable > 0 {
            out += prose("judge \(p.scorer): \(p.failed) calls failed, \(p.unparseable) answers had no verdict (left out)") + "\n"
        }
        out += "\n"
        if !metrics.isEmpty {
            out += heading("Calls compared (paired by request; lower is better)")
            let rows = metrics.map { c in
                [name(c.name), name(c.variant), evalNumber(c.controlMean), evalNumber(c.variantMean),
                 "\(evalSigned(c.difference)) [\(evalSigned(c.ciLow)), \(evalSigned(c.ciHigh))]", formatP(c.pValue)]
            }
            out += table(["Metric", "variant", name(variants[control]), "variant", "difference [\(confidenceLabel)]", "p"], rows) + "\n"
        }
        if let live {
            out += heading("Live experiment")
            out += prose("\(live.metric) of \(live.variant) live: \(live.relativeLift.map { formatPercent($0) } ?? "n/a")\(live.ciLow.map { " [\(formatPercent($0)), \(formatPercent(live.ciHigh))]" } ?? "") relative lift, \(live.pValue.map(formatPEquals) ?? "p n/a"), \(group(live.users)) users. \(live.note)") + "\n\n"
        }
        if !differences.isEmpty {
            out += heading("Where they differ most (\(primary))")
            for x in differences.prefix(markdown ? 10 : 5) {
                let question = x.question.count > 100 ? String(x.question.prefix(100)) + "…" : x.question
                let line = "\(x.item) (\(x.variant) \(evalSigned(x.difference))): \(question)"
                out += markdown ? "- " + prose(line) + "\n" : wrap("  " + ClientText.terminal(line), indent: "    ") + "\n"
            }
            out += "\n"
        }
        return out
    }


    private func renderJSON() -> String {
        var w = JSONWriter()
        w.object { w in
            w.value("schema", "bakeoff.eval/1")
            w.value("experiment", experiment)
            w.value("dataset", dataset)
            w.value("control", variants[control])
            w.array("variants") { w in for v in variants { w.value(nil, v) } }
            w.value("requests", requests)
            w.value("repetitions", repetitions)
            w.value("alpha", alpha)
            w.value("primary", primary)
            w.object("decision") { w in
                w.value("action", decision.action.rawValue)
                w.value("variant", decision.variant)
                w.array("reasons") { w in for r in decision.reasons { w.value(nil, r) } }
                w.value("requests_needed", decision.requestsNeeded)
                w.value("power", power)
                w.value("live_users_per_group", decision.liveUsersPerGroup)
                w.value("live_plan_hint", decision.livePlanHint)
            }
            w.array("win_rates") { w in
                for x in winRates {
                    w.object { w in
                        w.value("scorer", x.scorer); w.value("variant", x.variant); w.value("requests", x.requests)
                        w.value("wins", x.wins); w.value("ties", x.ties); w.value("losses", x.losses)
                        w.value("win_rate", x.winRate); w.value("ci_low", x.ciLow); w.value("ci_high", x.ciHigh)
                        w.value("p_value", x.pValue); w.value("adjusted_p_value", x.adjustedPValue)
                        w.value("first_position_rate", x.firstPositionRate); w.value("flip_rate", x.flipRate)
                        w.value("judgments", x.judgments)
                    }
                }
            }
            w.array("rankings") { w in
                for r in rankings {
                    w.object { w in
                        w.value("scorer", r.scorer)
                        w.value("skipped_resamples", r.skippedResamples)
                        w.array("entries") { w in
                            for e in r.entries {
                                w.object { w in
                                    w.value("variant", e.variant); w.value("strength", e.strength)
                                    w.value("ci_low", e.ciLow); w.value("ci_high", e.ciHigh); w.value("win_probability", e.winProbability)
                                }
                            }
                        }
                    }
                }
            }
            func comparisons(_ key: String, _ list: [PairedComparison]) {
                w.array(key) { w in
                    for c in list {
                        w.object { w in
                            w.value("name", c.name); w.value("variant", c.variant); w.value("binary", c.binary)
                            w.value("higher_is_better", c.direction.map { $0 > 0 }); w.value("requests", c.requests)
                            w.value("control_mean", c.controlMean); w.value("variant_mean", c.variantMean)
                            w.value("difference", c.difference); w.value("ci_low", c.ciLow); w.value("ci_high", c.ciHigh)
                            w.value("test", c.test.rawValue); w.value("p_value", c.pValue); w.value("adjusted_p_value", c.adjustedPValue)
                            w.value("wilcoxon_p_value", c.wilcoxonP); w.value("only_variant", c.onlyVariant); w.value("only_control", c.onlyControl)
                        }
                    }
                }
            }
            comparisons("scores", scores)
            comparisons("metrics", metrics)
            w.array("guardrails") { w in
                for g in guardrails {
                    w.object { w in
                        w.value("name", g.name); w.value("variant", g.variant); w.value("state", g.state.rawValue)
                        w.value("worsening", g.worsening); w.value("worst_case", g.worstCase); w.value("margin", g.margin)
                    }
                }
            }
            w.array("calls") { w in
                for c in calls {
                    w.object { w in
                        w.value("variant", c.variant); w.value("answers", c.answers); w.value("failed", c.failed)
                        w.value("cached", c.cached); w.value("retries", c.retries); w.value("mean_latency_ms", c.meanLatencyMs)
                        w.value("p95_latency_ms", c.p95LatencyMs); w.value("mean_ttft_ms", c.meanTTFTMs)
                        w.value("mean_input_tokens", c.meanInputTokens); w.value("mean_output_tokens", c.meanOutputTokens)
                        w.value("mean_cost_usd", c.meanCostUSD)
                        w.value("common_error", c.commonError)
                    }
                }
            }
            w.array("judge_problems") { w in
                for p in judgeProblems {
                    w.object { w in w.value("scorer", p.scorer); w.value("failed", p.failed); w.value("unparseable", p.unparseable) }
                }
            }
            w.array("differences") { w in
                for x in differences {
                    w.object { w in
                        w.value("id", x.item); w.value("variant", x.variant); w.value("difference", x.difference)
                        w.value("question", x.question); w.value("control_answer", x.controlAnswer); w.value("variant_answer", x.variantAnswer)
                        w.value("reference", x.reference)
                    }
                }
            }
            w.array("human_agreement") { w in
                for h in humanAgreement {
                    w.object { w in
                        w.value("scorer", h.scorer); w.value("variant", h.variant); w.value("labels", h.labels)
                        w.value("labelers", h.labelers); w.value("requests", h.requests); w.value("unmatched_labels", h.unmatchedLabels)
                        w.value("human_win_rate", h.human?.winRate); w.value("human_ci_low", h.human?.ciLow); w.value("human_ci_high", h.human?.ciHigh)
                        w.value("human_p_value", h.human?.pValue); w.value("judge_win_rate", h.judge?.winRate)
                        w.value("percent_agreement", h.percentAgreement); w.value("kappa", h.kappa?.kappa)
                        w.value("kappa_ci_low", h.kappa?.ciLow); w.value("kappa_ci_high", h.kappa?.ciHigh)
                        w.value("weighted_kappa", h.weightedKappa?.kappa)
                        w.array("confusion") { w in for row in h.confusion { w.array { w in for x in row { w.value(nil, x) } } } }
                    }
                }
            }
            if let live {
                w.object("live") { w in
                    w.value("metric", live.metric); w.value("variant", live.variant); w.value("relative_lift", live.relativeLift)
                    w.value("ci_low", live.ciLow); w.value("ci_high", live.ciHigh); w.value("p_value", live.pValue)
                    w.value("users", live.users); w.value("note", live.note)
                }
            }
        }
        return w.text + "\n"
    }
}
