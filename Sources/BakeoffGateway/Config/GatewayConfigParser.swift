import Foundation
import BakeoffCore
import BakeoffHTTP
import BakeoffEval
import BakeoffStore

/// Problems found so far (shared by the readers of nested objects).
final class ConfigProblems {
    var list: [ConfigError] = []
    func add(_ error: ConfigError) { list.append(error) }
}

/// A `ConfigObject` that records errors instead of throwing, so that one pass reports every problem.
struct FieldReader {
    var object: ConfigObject
    let problems: ConfigProblems

    var path: String { object.path }
    var source: String { object.source }

    func has(_ key: String) -> Bool {
        guard let v = object[key] else { return false }
        return !v.isNull
    }

    func fail(_ key: String?, _ message: String) { problems.add(object.fail(key, message)) }

    func childPath(_ key: String) -> String { object.childPath(key) }

    private mutating func read<T>(_ body: (inout ConfigObject) throws(ConfigError) -> T?) -> T? {
        do { return try body(&object) } catch { problems.add(error); return nil }
    }

    mutating func string(_ key: String) -> String? { read { o throws(ConfigError) in try o.string(key) } }
    mutating func bool(_ key: String) -> Bool? { read { o throws(ConfigError) in try o.bool(key) } }
    mutating func double(_ key: String, in range: ClosedRange<Double>) -> Double? {
        read { o throws(ConfigError) in try o.double(key, in: range) }
    }

    /// A non-empty string; `missing` is the message when the key is absent (nil: optional).
    mutating func nonEmptyString(_ key: String, missing: String?) -> String? {
        guard has(key) else {
            _ = object.take(key)
            if let missing { fail(key, missing) }
            return nil
        }
        guard let s = string(key) else { return nil }
        guard !s.isEmpty else { fail(key, "must not be empty"); return nil }
        return s
    }

    /// A whole number in `range`.
    mutating func int(_ key: String, in range: ClosedRange<Int>) -> Int? {
        guard let v = read({ o throws(ConfigError) in try o.double(key) }) else { return nil }
        let upper = range.upperBound == Int.max ? "" : " and at most \(range.upperBound)"
        guard v == v.rounded(), v >= Double(range.lowerBound), v <= Double(range.upperBound), v < 1e15 else {
            fail(key, "must be a whole number of at least \(range.lowerBound)\(upper), got \(JSONWriter.number(v))")
            return nil
        }
        return Int(v)
    }

    mutating func object(_ key: String) -> FieldReader? {
        read { o throws(ConfigError) in try o.object(key) }.map { FieldReader(object: $0, problems: problems) }
    }

    mutating func objects(_ key: String) -> [FieldReader]? {
        read { o throws(ConfigError) in try o.objects(key) }.map { $0.map { FieldReader(object: $0, problems: problems) } }
    }

    /// The raw value of `key` (nil when absent or null), marked as read.
    mutating func raw(_ key: String) -> JSONValue? { object.take(key) }

    /// Reports every key not in `known`.
    func finish(known: [String]) {
        for key in object.members.keys.sorted() where !known.contains(key) {
            var message = "unknown key"
            if let guess = closestName(key, among: known) { message += "; did you mean \"\(guess)\"?" }
            message += " (known keys here: \(known.joined(separator: ", ")))"
            fail(key, message)
        }
    }
}

enum Keys {
    static let root = ["listen", "threads", "max_body_bytes", "user_header", "log_content", "admin_key_env",
                       "store", "upstream_defaults", "experiments",
                       "max_connections", "max_connections_per_address", "header_timeout_ms", "body_timeout_ms",
                       "idle_timeout_ms", "memory_budget_bytes", "otlp"]
    /// Who may call what: client keys, feedback tokens, what clients see of the assignment.
    static let access = ["client_keys_env", "feedback_key_env", "feedback_token_ttl_seconds", "expose_variant", "feedback_limit"]
    static let store = ["path", "url", "password_env", "flush_interval_ms", "queue_capacity", "retention_days"]
    static let upstreamDefaults = ["timeout_ms", "connect_timeout_ms"]
    /// Trace export (OpenTelemetry, OTLP over HTTP).
    static let otlp = ["endpoint", "protocol", "headers_env", "service_name", "resource_attributes", "timeout_ms",
                       "export_interval_ms", "batch_size", "queue_size"]
    static let experiment = ["name", "model", "control", "split", "per_request_assignment", "log_content",
                             "analysis", "variants", "expose_variant", "eval"]
    static let judge = ["upstream", "parameters"]
    static let variant = ["name", "weight", "upstream", "system_prompt", "parameters"]
    static let upstream = ["base_url", "model", "api_key_env", "headers", "timeout_ms", "connect_timeout_ms", "tls"]
    /// How the gateway trusts an https:// upstream's certificate.
    static let upstreamTLS = ["ca_file"]
    /// Keys of an analysis config that the gateway experiment sets itself.
    static let analysisFromExperiment = ["experiment": "name", "control": "control", "split": "split", "variants": "variants"]
}

struct GatewayConfigParser {
    let source: String
    let environment: [String: String]
    let problems = ConfigProblems()

    init(source: String, environment: [String: String]) {
        self.source = source
        self.environment = environment
    }

    /// The config, or nil when a part of it could not be built (the problems say why). Problems may be
    /// recorded even when a config is returned.
    func parseRoot(_ object: ConfigObject) -> GatewayConfig? {
        var root = FieldReader(object: object, problems: problems)
        defer { root.finish(known: Keys.root + Keys.access) }

        var listenHost = "127.0.0.1", listenPort: UInt16 = 8080
        if let listen = root.string("listen") {
            if let (host, port) = parseListen(listen) {
                (listenHost, listenPort) = (host, port)
            } else {
                root.fail("listen", "\(JSONWriter.quote(listen)) is not host:port with an IPv4 address, \"localhost\" or \"0.0.0.0\" and a port from 0 to 65535 (0 picks a free one), e.g. \"127.0.0.1:8080\"")
            }
        }
        let threads = root.int("threads", in: 1...64) ?? GatewayConfig.Defaults.threads
        let maxBody = root.int("max_body_bytes", in: 1024...Int.max) ?? GatewayConfig.Defaults.maxBodyBytes
        let limits = parseLimits(&root, maxBodyBytes: maxBody)
        var userHeader = GatewayConfig.Defaults.userHeader
        if let header = root.string("user_header") {
            if isToken(header) { userHeader = header } else {
                root.fail("user_header", "\(JSONWriter.quote(header)) is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~, e.g. \"X-Bakeoff-User\")")
            }
        }
        let logContent = root.bool("log_content") ?? false
        var adminKeyEnv = GatewayConfig.Defaults.adminKeyEnv
        if let name = root.string("admin_key_env") {
            if isEnvironmentName(name) { adminKeyEnv = name } else { root.fail("admin_key_env", notEnvironmentName) }
        }
        let adminKey = environment[adminKeyEnv].flatMap { $0.isEmpty ? nil : $0 }
        if let adminKey, adminKey.utf8.count < GatewayConfig.minimumSecretBytes {
            root.fail("admin_key_env", "$\(adminKeyEnv) is \(adminKey.utf8.count) bytes long; an admin key needs at least \(GatewayConfig.minimumSecretBytes) (e.g. openssl rand -hex 16)")
        }
        let access = parseAccess(&root)

        var storePath = GatewayConfig.Defaults.storePath
        var flush = GatewayConfig.Defaults.flushIntervalMs, queue = GatewayConfig.Defaults.queueCapacity
        var retention: Int?
        var storePassword: String?
        if var store = root.object("store") {
            if let path = store.string("path") {
                if path.isEmpty { store.fail("path", "must not be empty (the default is \"bakeoff.db\")") } else { storePath = path }
            }
            if let url = store.string("url") {
                if store.has("path") {
                    store.fail("url", "give \"path\" (an SQLite file) or \"url\" (a PostgreSQL server), not both")
                } else {
                    do throws(StoreError) {
                        _ = try PostgresLocation(url: url)
                        storePath = url
                        if access.feedbackKey == nil {
                            store.fail("url", GatewayConfig.sharedStoreNeedsKey(access.feedbackKeyEnv))
                        }
                    } catch {
                        store.fail("url", PostgresLocation.isURL(url)
                            ? "holds a password; leave it out of the URL and name the variable that holds it in \"password_env\" (default: libpq's PGPASSWORD)"
                            : "must be a PostgreSQL URL, postgresql://USER@HOST:PORT/DATABASE (for an SQLite file, use \"path\")")
                    }
                }
            }
            if let name = store.string("password_env") {
                if !isEnvironmentName(name) {
                    store.fail("password_env", notEnvironmentName)
                } else if !store.has("url") {
                    store.fail("password_env", "only goes with \"url\" (a PostgreSQL store)")
                } else if let value = environment[name], !value.isEmpty {
                    storePassword = value
                } else {
                    store.fail("password_env", "$\(name) is not set: it should hold the PostgreSQL password")
                }
            }
            flush = store.int("flush_interval_ms", in: 1...10_000) ?? flush
            queue = store.int("queue_capacity", in: 1...Int.max) ?? queue
            retention = store.int("retention_days", in: 1...36_500)
            store.finish(known: Keys.store)
        }
        var timeout = GatewayConfig.Defaults.timeoutMs, connectTimeout = GatewayConfig.Defaults.connectTimeoutMs
        if var defaults = root.object("upstream_defaults") {
            timeout = defaults.int("timeout_ms", in: 1...Int.max) ?? timeout
            connectTimeout = defaults.int("connect_timeout_ms", in: 1...Int.max) ?? connectTimeout
            defaults.finish(known: Keys.upstreamDefaults)
        }

        let (traceExport, traceNotes) = parseTraceExport(&root)

        var experiments: [GatewayExperiment] = []
        var complete = true
        if let entries = root.objects("experiments") {
            if entries.isEmpty { root.fail("experiments", "must list at least one experiment") }
            var names: [String: Int] = [:], aliases: [String: Int] = [:]
            for (i, var entry) in entries.enumerated() {
                let context = ExperimentContext(index: i, logContent: logContent, timeoutMs: timeout, connectTimeoutMs: connectTimeout)
                if let s = entry.object["name"]?.string, !s.isEmpty {
                    if let first = names[s] { entry.fail("name", "\(JSONWriter.quote(s)) is already the name of experiments[\(first)]; names must be unique") } else { names[s] = i }
                }
                if let s = entry.object["model"]?.string, !s.isEmpty {
                    if let first = aliases[s] { entry.fail("model", "\(JSONWriter.quote(s)) is already the model alias of experiments[\(first)]; each alias routes to one experiment") } else { aliases[s] = i }
                }
                if let experiment = parseExperiment(&entry, context) { experiments.append(experiment) } else { complete = false }
            }
        } else if !root.has("experiments") {
            root.fail("experiments", "missing: list at least one experiment, e.g. \"experiments\": [{\"name\": ..., \"model\": ..., \"variants\": [...]}]")
        }
        guard complete else { return nil }
        var config = GatewayConfig(
            listenHost: listenHost, listenPort: listenPort, threads: threads, maxBodyBytes: maxBody,
            userHeader: userHeader, logContent: logContent, adminKeyEnv: adminKeyEnv, adminKey: adminKey,
            storePath: storePath, flushIntervalMs: flush, queueCapacity: queue, retentionDays: retention,
            experiments: experiments, source: source, limits: limits)
        config.access = access
        config.storePassword = storePassword
        config.traceExport = traceExport
        config.traceExportNotes = traceNotes
        return config
    }

    /// The access keys of the root object: client keys, the feedback-token key, variant exposure, feedback cap.
    func parseAccess(_ root: inout FieldReader) -> GatewayAccess {
        var access = GatewayAccess()
        if let name = root.string("client_keys_env") {
            if !isEnvironmentName(name) { root.fail("client_keys_env", notEnvironmentName) } else {
                access.clientKeysEnv = name
                let keys = (environment[name] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                if keys.isEmpty {
                    root.fail("client_keys_env", "$\(name) is unset or empty; set it to the client keys, separated by commas (or remove \"client_keys_env\" to let any client in)")
                } else if let short = keys.first(where: { $0.utf8.count < GatewayConfig.minimumSecretBytes }) {
                    root.fail("client_keys_env", "a key in $\(name) is \(short.utf8.count) bytes long; client keys need at least \(GatewayConfig.minimumSecretBytes)")
                } else {
                    access.clientKeys = keys
                }
            }
        }
        if let name = root.string("feedback_key_env") {
            if isEnvironmentName(name) { access.feedbackKeyEnv = name } else { root.fail("feedback_key_env", notEnvironmentName) }
        }
        if let key = environment[access.feedbackKeyEnv], !key.isEmpty {
            if key.utf8.count < GatewayConfig.minimumSecretBytes {
                root.fail("feedback_key_env", "$\(access.feedbackKeyEnv) is \(key.utf8.count) bytes long; the feedback-token key needs at least \(GatewayConfig.minimumSecretBytes)")
            } else {
                access.feedbackKey = Array(key.utf8)
            }
        }
        access.feedbackTokenLifetimeSeconds = root.int("feedback_token_ttl_seconds", in: 60...31_622_400).map(Int64.init) ?? access.feedbackTokenLifetimeSeconds
        access.exposeVariant = root.bool("expose_variant") ?? access.exposeVariant
        access.feedbackLimit = root.int("feedback_limit", in: 1...1_000_000) ?? access.feedbackLimit
        return access

    }

    /// The connection limits, deadlines and memory budget (top-level keys).
    func parseLimits(_ root: inout FieldReader, maxBodyBytes: Int) -> GatewayLimits {
        var limits = GatewayLimits()
        limits.maxConnections = root.int("max_connections", in: 1...1_000_000)
        limits.maxConnectionsPerAddress = root.int("max_connections_per_address", in: 0...1_000_000)
        limits.headerTimeoutMs = root.int("header_timeout_ms", in: 100...3_600_000) ?? limits.headerTimeoutMs
        limits.bodyTimeoutMs = root.int("body_timeout_ms", in: 100...3_600_000) ?? limits.bodyTimeoutMs
        limits.idleTimeoutMs = root.int("idle_timeout_ms", in: 1000...3_600_000) ?? limits.idleTimeoutMs
        if let budget = root.int("memory_budget_bytes", in: 1 << 20...Int.max) {
            if budget < maxBodyBytes {
                root.fail("memory_budget_bytes", "must be at least max_body_bytes (\(maxBodyBytes)), or a body of the largest allowed size could never be taken")
            } else {
                limits.memoryBudgetBytes = budget
            }
        } else if maxBodyBytes > limits.memoryBudgetBytes {
            limits.memoryBudgetBytes = maxBodyBytes
        }
        return limits
    }

    struct ExperimentContext {
        var index: Int
        var logContent: Bool
        var timeoutMs: Int
        var connectTimeoutMs: Int
    }

    func parseExperiment(_ e: inout FieldReader, _ context: ExperimentContext) -> GatewayExperiment? {
        defer { e.finish(known: Keys.experiment) }
        let name = e.nonEmptyString("name", missing: "each experiment needs a \"name\" (hashed with the user ID for assignment)")
        let model = e.nonEmptyString("model", missing: "each experiment needs a \"model\": the alias clients put in \"model\"")
        let controlName = e.string("control")
        let split = e.double("split", in: 0...1)
        let splitGiven = e.has("split")
        let perRequest = e.bool("per_request_assignment") ?? false
        let logContent = e.bool("log_content") ?? context.logContent
        let exposeVariant = e.bool("expose_variant")
        let analysisObject = e.object("analysis")
        let evalObject = e.object("eval")

        // Variants, in file order.
        var parsed: [(variant: GatewayVariant?, weight: Double?, path: String)] = []
        var variantsOK = true
        if let entries = e.objects("variants") {
            if entries.isEmpty { e.fail("variants", "must list at least one variant") ; variantsOK = false }
            var seen: [String: Int] = [:]
            for (j, var entry) in entries.enumerated() {
                if let s = entry.object["name"]?.string, !s.isEmpty {
                    if let first = seen[s] {
                        entry.fail("name", "\(JSONWriter.quote(s)) is already the name of variants[\(first)]; names must be unique")
                        variantsOK = false
                    } else { seen[s] = j }
                }
                let result = parseVariant(&entry, context, splitGiven: splitGiven)
                if result.variant == nil { variantsOK = false }
                parsed.append((result.variant, result.weight, entry.path))
            }
        } else {
            variantsOK = false
            if !e.has("variants") { e.fail("variants", "each experiment needs \"variants\", e.g. [{\"name\": \"control\", \"weight\": 0.5, \"upstream\": {...}}, ...]") }
        }
        guard variantsOK else { return nil }
        var variants = parsed.map { $0.variant! }

        // The allocation.
        let allocation: Allocation
        if splitGiven {
            guard let split else { return nil }
            let names = Set(variants.map(\.name))
            guard variants.count == 2, names == ["control", "treatment"] else {
                e.fail("split", "the \"split\" shortcut needs exactly two variants named \"control\" and \"treatment\" (got \(variants.map { JSONWriter.quote($0.name) }.joined(separator: ", "))); give each variant a \"weight\" instead")
                return nil
            }
            do { allocation = try Allocation(split: split) } catch { e.fail("split", error.message); return nil }
            variants = allocation.names.map { n in variants.first { $0.name == n }! }
        } else {
            guard parsed.allSatisfy({ $0.weight != nil }) else { return nil }
            do {
                allocation = try Allocation(arms: variants.map { Allocation.Arm(name: $0.name, weight: $0.weight) })
            } catch {
                e.fail("variants", error.message)
                return nil
            }
        }
        for i in variants.indices { variants[i].weight = allocation.arms[i].weight }

        // The control.
        var control: String
        if let controlName {
            guard variants.contains(where: { $0.name == controlName }) else {
                e.fail("control", "\(JSONWriter.quote(controlName)) is not a variant of this experiment (variants: \(parsed.compactMap { $0.variant?.name }.joined(separator: ", ")))")
                return nil
            }
            control = controlName
        } else {
            control = variants.contains { $0.name == "control" } ? "control" : parsed[0].variant!.name
        }

        // The analysis plan.
        var analysis = ExperimentConfig()
        if let analysisObject {
            var members = analysisObject.object.members
            for (key, replacement) in Keys.analysisFromExperiment.sorted(by: { $0.key < $1.key }) where members.contains(key) {
                analysisObject.fail(key, "set by the experiment itself (\"\(replacement)\" of experiments[\(context.index)]); remove it from \"analysis\"")
                members = members.removing(key)
            }
            var object = ConfigObject(source: analysisObject.source, path: analysisObject.path, members: members)
            do { analysis = try ExperimentConfig.parse(&object, readsPlan: false) } catch {
                problems.add(error)
                return nil
            }
        }
        // A covariate file named in the plan is found next to the gateway config.
        if let file = analysis.covariatesPath, !file.hasPrefix("/"), let slash = source.lastIndex(of: "/") {
            analysis.covariatesPath = String(source[...slash]) + file
        }
        if let path = analysis.covariatesPath, !FileManager.default.isReadableFile(atPath: path) {
            problems.add(ConfigError(source: source, path: (analysisObject?.path ?? "") + ".covariates",
                                     message: "\(path): no such readable file (CSV user_id,metric,value[,units])"))
        }
        // The gateway takes only feedback names that are identifiers: a metric reading another could never get data.
        for (k, metric) in analysis.metrics.enumerated() {
            if case .feedback(let feedback) = metric.source, !Gateway.isFeedbackName(feedback) {
                problems.add(ConfigError(source: source, path: (analysisObject?.path ?? "") + ".metrics",
                                         message: "metric \(JSONWriter.quote(metric.name)) (#\(k + 1)) reads feedback \(JSONWriter.quote(feedback)), which the gateway would refuse: feedback names are 1 to \(Gateway.maxFeedbackNameBytes) letters, digits, \"_\", \".\" or \"-\""))
            }
        }
        var eval: GatewayEval?
        if var evalObject {
            eval = parseEval(&evalObject, context, variantNames: variants.map(\.name))
            if eval == nil { return nil }
        }
        guard let name, let model else { return nil }
        analysis.experiment = name
        analysis.control = control
        analysis.allocation = allocation

        return GatewayExperiment(
            name: name, model: model, control: control, allocation: allocation,
            assigner: Assigner(experiment: name, allocation: allocation),
            perRequestAssignment: perRequest, logContent: logContent, analysis: analysis, variants: variants,
            exposesVariantSetting: exposeVariant, eval: eval)
    }

    func parseVariant(
        _ v: inout FieldReader, _ context: ExperimentContext, splitGiven: Bool
    ) -> (variant: GatewayVariant?, weight: Double?) {
        defer { v.finish(known: Keys.variant) }
        let name = v.nonEmptyString("name", missing: "each variant needs a \"name\"")
        var weight: Double?
        if splitGiven {
            if v.has("weight") {
                _ = v.raw("weight")
                v.fail("weight", "give either \"split\" on the experiment or a \"weight\" on every variant, not both")
            }
        } else if v.has("weight") {
            weight = v.double("weight", in: 0...1)
        } else {
            _ = v.raw("weight")
            v.fail("weight", "each variant needs a \"weight\" (the weights sum to 1), unless the experiment gives \"split\"")
        }
        var upstream: UpstreamTarget?
        if var u = v.object("upstream") {
            upstream = parseUpstream(&u, context)
        } else if !v.has("upstream") {
            v.fail("upstream", "each variant needs an \"upstream\": {\"base_url\": \"http://host:port/v1\", \"model\": \"...\"}")
        }
        var systemPrompt: String?
        if let prompt = v.string("system_prompt") {
            if prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                v.fail("system_prompt", "must not be empty; leave it out to keep the client's system message")
            } else { systemPrompt = prompt }
        }
        let parameters = parseParameters(&v)
        guard let name, let upstream, let parameters, problemsFree(v) else { return (nil, weight) }
        return (GatewayVariant(name: name, weight: weight ?? 0, upstream: upstream, systemPrompt: systemPrompt, parameters: parameters), weight)
    }

    /// A variant's (or judge's) `"parameters"`: sampling overrides, each value's JSON text; nil when invalid.
    func parseParameters(_ v: inout FieldReader) -> [(key: String, json: String)]? {
        var parameters: [(key: String, json: String)] = []
        guard let raw = v.raw("parameters") else { return parameters }
        guard let dict = raw.object else {
            v.fail("parameters", "must be an object of sampling parameters, e.g. {\"temperature\": 0.2, \"max_tokens\": 512}, got \(raw.described)")
            return nil
        }
        var ok = true
        for key in dict.keys {
            if GatewayConfig.refusedParameters.contains(key) {
                problems.add(ConfigError(source: v.source, path: v.childPath("parameters") + "." + key,
                                         message: refusedParameterMessage(key)))
                ok = false
                continue
            }
            parameters.append((key, dict[key]!.jsonText))
        }
        return ok ? parameters : nil
    }

    /// An experiment's `"eval"`: the offline eval's plan (read by BakeoffEval) and the judge's endpoint.
    func parseEval(_ e: inout FieldReader, _ context: ExperimentContext, variantNames: [String]) -> GatewayEval? {
        var judge: GatewayVariant?
        var judgeOK = true
        if var j = e.object("judge") {
            defer { j.finish(known: Keys.judge) }
            var upstream: UpstreamTarget?
            if var u = j.object("upstream") {
                upstream = parseUpstream(&u, context)
            } else if !j.has("upstream") {
                j.fail("upstream", "a judge needs an \"upstream\": {\"base_url\": \"https://api.openai.com/v1\", \"model\": \"gpt-4o\", \"api_key_env\": \"OPENAI_API_KEY\"}")
            }
            // A judge decides, it does not create: temperature 0 unless the config says otherwise.
            let parameters = j.has("parameters") ? parseParameters(&j) : [("temperature", "0")]
            if let upstream, let parameters, problemsFree(j) {
                judge = GatewayVariant(name: "judge", weight: 0, upstream: upstream, systemPrompt: nil, parameters: parameters)
            } else { judgeOK = false }
        }
        let plan: EvalPlan
        do { plan = try EvalPlan.parse(&e.object) } catch {
            problems.add(error)
            return nil
        }
        guard judgeOK else { return nil }
        for name in plan.prices.keys.sorted() where !variantNames.contains(name) {
            problems.add(ConfigError(source: e.source, path: e.childPath("prices") + "." + name,
                                     message: "\(JSONWriter.quote(name)) is not a variant of this experiment (variants: \(variantNames.joined(separator: ", ")))"))
            return nil
        }
        if plan.needsJudge && judge == nil {
            let names = plan.scorers.filter { if case .judge = $0 { return true } else { return false } }.map(\.name)
            e.fail("judge", "the scorer\(names.count == 1 ? "" : "s") \(names.joined(separator: ", ")) need\(names.count == 1 ? "s" : "") a judge: add \"judge\": {\"upstream\": {\"base_url\": ..., \"model\": ..., \"api_key_env\": ...}}")
            return nil
        }
        return GatewayEval(plan: plan, judge: judge)
    }

    /// Whether no problem has been recorded at or under `reader`'s path.
    func problemsFree(_ reader: FieldReader) -> Bool {
        let prefix = reader.path
        return !problems.list.contains { $0.path == prefix || $0.path.hasPrefix(prefix + ".") || $0.path.hasPrefix(prefix + "[") }
    }

    func parseUpstream(_ u: inout FieldReader, _ context: ExperimentContext) -> UpstreamTarget? {
        defer { u.finish(known: Keys.upstream) }
        var ok = true
        var baseURL: String?
        if let url = u.nonEmptyString("base_url", missing: "each upstream needs a \"base_url\", the server's OpenAI-compatible /v1 base, e.g. \"http://127.0.0.1:9001/v1\"") {
            switch checkBaseURL(url) {
            case .success(let clean): baseURL = clean
            case .failure(let message): u.fail("base_url", message.text); ok = false
            }
        } else { ok = false }
        let model = u.nonEmptyString("model", missing: "each upstream needs a \"model\": the model name the upstream server knows (it replaces the alias)")
        var apiKeyEnv: String?, apiKey: String?
        if let env = u.string("api_key_env") {
            if !isEnvironmentName(env) {
                u.fail("api_key_env", notEnvironmentName)
                ok = false
            } else if let value = environment[env], !value.isEmpty {
                apiKeyEnv = env
                apiKey = value
            } else {
                u.fail("api_key_env", "the environment variable \(env) is \(environment[env] == nil ? "not set" : "empty"); export it with the upstream's API key, or remove \"api_key_env\" if the upstream needs no key")
                ok = false
            }
        }
        var headers: [(name: String, value: String)] = []
        if let raw = u.raw("headers") {
            if let dict = raw.object {
                var seen: [String: String] = [:]
                for key in dict.keys {
                    let path = u.childPath("headers") + "." + key
                    func fail(_ message: String) { problems.add(ConfigError(source: u.source, path: path, message: message)); ok = false }
                    guard isToken(key) else { fail("\(JSONWriter.quote(key)) is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"); continue }
                    let lower = key.lowercased()
                    if lower == "authorization" {
                        fail("the Authorization header cannot be set here: keys do not belong in config files, which get committed and shared. Put the key in an environment variable and name it in \"api_key_env\"; the gateway sends it as \"Authorization: Bearer <key>\"")
                        continue
                    }
                    if ["content-length", "transfer-encoding", "connection", "host"].contains(lower) {
                        fail("\(key) is set by the gateway for each request and cannot be configured")
                        continue
                    }
                    if let first = seen[lower] { fail("the same header as \(JSONWriter.quote(first)) (header names are case-insensitive)"); continue }
                    seen[lower] = key
                    guard let value = dict[key]!.string else { fail("header values must be strings, got \(dict[key]!.described)"); continue }
                    guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                        fail("header values must not contain line breaks (CR, LF) or NUL")
                        continue
                    }
                    headers.append((key, value))
                }
            } else {
                u.fail("headers", "must be an object of header names to string values, e.g. {\"X-Team\": \"support\"}, got \(raw.described)")
                ok = false
            }
        }
        let timeout = u.int("timeout_ms", in: 1...Int.max) ?? context.timeoutMs
        let connect = u.int("connect_timeout_ms", in: 1...Int.max) ?? context.connectTimeoutMs
        var tls: UpstreamTLSSettings?
        if var t = u.object("tls") {
            tls = parseUpstreamTLS(&t, baseURL: baseURL)
            if tls == nil { ok = false }
        }
        guard ok, let baseURL, let model, problemsFree(u) else { return nil }
        return UpstreamTarget(baseURL: baseURL, model: model, apiKeyEnv: apiKeyEnv, apiKey: apiKey, headers: headers,
                              timeoutMs: timeout, connectTimeoutMs: connect, tls: tls)
    }

    /// An upstream's `"tls"`: the CA file its certificate must chain to, checked now (there, readable, PEM
    /// certificates and no private key) so that a mistake stops the start instead of failing every request.
    /// A relative path is found next to the config file, like the covariates.
    func parseUpstreamTLS(_ t: inout FieldReader, baseURL: String?) -> UpstreamTLSSettings? {
        defer { t.finish(known: Keys.upstreamTLS) }
        if let baseURL, !baseURL.lowercased().hasPrefix("https://") {
            t.fail(nil, "applies only to an https:// base_url (this upstream is plain HTTP): change the base_url to https://, or remove \"tls\"")
        }
        guard let given = t.nonEmptyString("ca_file", missing: "\"tls\" needs a \"ca_file\": the PEM file of the CA that issued the upstream's certificate (or the certificate itself, if it is self-signed)") else { return nil }
        var path = given
        if !path.hasPrefix("/"), let slash = source.lastIndex(of: "/") { path = String(source[...slash]) + path }
        if let problem = UpstreamTLSSettings.problem(caFile: path) {
            t.fail("ca_file", "\(path): \(problem)")
            return nil
        }
        guard problemsFree(t) else { return nil }
        return UpstreamTLSSettings(caFile: path)
    }
}

let notEnvironmentName = "must be the name of an environment variable (letters, digits and _, not starting with a digit), not the key itself"

private func refusedParameterMessage(_ key: String) -> String {
    switch key {
    case "model": return "cannot be set here: the upstream's model is \"upstream.model\""
    case "messages", "prompt": return "cannot be set here: the prompt comes from the client (use \"system_prompt\" to change the system message)"
    case "stream", "stream_options": return "cannot be set here: streaming is the client's choice, and the gateway sets stream_options to count tokens"
    default: return "cannot be set here: the gateway sets \"user\" from the client's request"
    }
}

/// A message for a base URL problem.
struct URLProblem: Error { var text: String }

/// `url` without trailing slashes, if it is http(s) with a host and nothing the gateway cannot append a path to.
func checkBaseURL(_ url: String) -> Result<String, URLProblem> {
    let lower = url.lowercased()
    let scheme: String
    if lower.hasPrefix("http://") { scheme = "http://" } else if lower.hasPrefix("https://") { scheme = "https://" } else {
        return .failure(URLProblem(text: "must start with http:// or https:// (got \(JSONWriter.quote(url)))"))
    }
    guard !url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) else {
        return .failure(URLProblem(text: "must not contain spaces or control characters"))
    }
    guard !url.contains("?"), !url.contains("#") else {
        return .failure(URLProblem(text: "must not have a query or fragment: it is the /v1 base that paths such as /chat/completions are appended to"))
    }
    let rest = url.dropFirst(scheme.count)
    let authority = rest.prefix { $0 != "/" }
    guard !authority.contains("@") else {
        return .failure(URLProblem(text: "must not contain credentials (user:password@); put a key in an environment variable and name it in \"api_key_env\""))
    }
    var host = Substring(authority), port: Substring?
    if authority.hasPrefix("[") {
        guard let close = authority.firstIndex(of: "]") else { return .failure(URLProblem(text: "has an unclosed IPv6 address")) }
        host = authority[authority.index(after: authority.startIndex)..<close]
        let after = authority[authority.index(after: close)...]
        if after.hasPrefix(":") { port = after.dropFirst() } else if !after.isEmpty { return .failure(URLProblem(text: "has an invalid host")) }
    } else if let colon = authority.firstIndex(of: ":") {
        host = authority[..<colon]
        port = authority[authority.index(after: colon)...]
    }
    guard !host.isEmpty else { return .failure(URLProblem(text: "has no host (got \(JSONWriter.quote(url))), e.g. \"http://127.0.0.1:9001/v1\"")) }
    if let port {
        guard !port.isEmpty, port.allSatisfy(\.isASCII), port.allSatisfy(\.isNumber), let n = Int(port), (1...65535).contains(n) else {
            return .failure(URLProblem(text: "has an invalid port \(JSONWriter.quote(String(port))) (1 to 65535)"))
        }
    }
    var clean = url
    while clean.hasSuffix("/") { clean.removeLast() }
    return .success(clean)
}

/// `host:port` with an IPv4 literal, "localhost" (stored as 127.0.0.1) or "0.0.0.0", and a port from 0 (a free one) to 65535.
func parseListen(_ text: String) -> (String, UInt16)? {
    guard let colon = text.lastIndex(of: ":") else { return nil }
    var host = String(text[..<colon])
    let portText = text[text.index(after: colon)...]
    guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
          let port = Int(portText), (0...65535).contains(port) else { return nil }
    if host == "localhost" { host = "127.0.0.1" }
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4, parts.allSatisfy({ p in
        !p.isEmpty && p.count <= 3 && p.allSatisfy { $0.isASCII && $0.isNumber } && Int(p)! <= 255
    }) else { return nil }
    return (host, UInt16(port))
}

/// An HTTP token (RFC 9110): a header name.
func isToken(_ s: String) -> Bool {
    !s.isEmpty && s.unicodeScalars.allSatisfy { u in
        guard u.isASCII else { return false }
        let c = Character(u)
        return c.isLetter || c.isNumber || "!#$%&'*+-.^_`|~".contains(c)
    }
}

/// A portable environment variable name.
func isEnvironmentName(_ s: String) -> Bool {
    guard let first = s.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
    return s.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
}
