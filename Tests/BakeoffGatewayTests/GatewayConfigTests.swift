import Foundation
import Testing
import BakeoffCore
import BakeoffGateway
import BakeoffHTTP

private let examplePath = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("examples/gateway.json").path

private func parse(_ json: String, environment: [String: String] = [:]) throws(ConfigError) -> GatewayConfig {
    try GatewayConfig.parse(Data(json.utf8), source: "gateway.json", environment: environment)
}

/// Every problem's description (`gateway.json: path: message`), or [] when the config is valid.
private func problems(_ json: String, environment: [String: String] = [:]) -> [String] {
    switch GatewayConfig.validate(Data(json.utf8), source: "gateway.json", environment: environment) {
    case .success: return []
    case .failure(let errors): return errors.errors.map(\.description)
    }
}

/// A valid config with two variants, `control` and `treatment`; each argument is inserted (with its trailing
/// comma) at the start of that object.
private func config(
    top: String = "", experiment: String = "", control: String = "", treatment: String = "",
    upstream: String = "", variants: String? = nil
) -> String {
    let defaultVariants = """
        [{"name": "control", "weight": 0.5, \(control) "upstream": {\(upstream) "base_url": "http://127.0.0.1:9001/v1", "model": "m1"}},
         {"name": "treatment", "weight": 0.5, \(treatment) "upstream": {"base_url": "http://127.0.0.1:9002/v1", "model": "m2"}}]
        """
    return """
        {\(top) "experiments": [{\(experiment) "name": "exp", "model": "bot", "variants": \(variants ?? defaultVariants)}]}
        """
}

@Test func exampleFileParses() throws {
    let config = try GatewayConfig.load(path: examplePath, environment: [:])
    #expect(config.experiments.map(\.name) == ["support-bot-v2", "concise-prompt"])
    let support = try #require(config.experiment(forModel: "support-bot"))
    #expect(support.name == "support-bot-v2")
    #expect(support.variants.map(\.name) == ["control", "treatment"])
    #expect(support.variants.map(\.weight) == [0.8, 0.2])
    #expect(support.analysis.primaryMetric == "task_completion")
    #expect(support.analysis.experiment == "support-bot-v2")
    #expect(support.analysis.control == "control")
    #expect(support.analysis.allocation == support.allocation)
    #expect(support.analysis.metrics.first { $0.name == "csat" }?.role == .guardrail)
    let treatment = try #require(support.variant(named: "treatment"))
    #expect(treatment.upstream.baseURL == "http://127.0.0.1:9002/v1")
    #expect(treatment.upstream.url("/chat/completions") == "http://127.0.0.1:9002/v1/chat/completions")
    #expect(treatment.upstream.apiKey == nil)
    #expect(treatment.upstream.timeoutMs == 60000 && treatment.upstream.connectTimeoutMs == 2000)
    #expect(treatment.upstream.headers.map(\.name) == ["X-Team"])
    #expect(treatment.parameters.map(\.key) == ["temperature", "max_tokens"])
    let prompt = try #require(config.experiment(named: "concise-prompt"))
    #expect(prompt.model == "faq-bot")
    #expect(prompt.perRequestAssignment && prompt.logContent && !support.logContent)
    #expect(prompt.variants.map(\.name) == ["treatment", "control"])  // Allocation(split:) order
    #expect(prompt.variant(named: "treatment")?.systemPrompt?.hasPrefix("You are a concise") == true)
    #expect(prompt.variant(named: "treatment")?.parameters.map(\.json) == ["0.9", "0.7056398416886543", "[\"\\n\\n\"]"])

    let summary = config.summary()
    for fragment in ["127.0.0.1:8080", "support-bot", "faq-bot", "http://127.0.0.1:9002/v1", "support-v2",
                     "bakeoff.db"] {
        #expect(summary.contains(fragment), "summary lacks \(fragment):\n\(summary)")
    }
}

/// An example must work as shipped: no environment variable needs setting before `serve --check` passes.
@Test func exampleFileLoadsWithNothingSet() throws {
    _ = try GatewayConfig.load(path: examplePath, environment: [:])
}

/// A key variable named by the config must be non-empty (unset is checked in `keys`), with the JSON path.
@Test func emptyKeyVariableIsRefused() {
    #expect(problems(config(upstream: "\"api_key_env\": \"V1_API_KEY\","), environment: ["V1_API_KEY": ""])
        .contains { $0.contains("experiments[0].variants[0].upstream.api_key_env: the environment variable V1_API_KEY is empty") })
}

@Test func defaults() throws {
    let config = try parse(config())
    #expect(config.listenHost == "127.0.0.1" && config.listenPort == 8080)
    #expect(config.threads == 2)
    #expect(config.maxBodyBytes == 10_485_760)
    #expect(config.userHeader == "X-Bakeoff-User")
    #expect(config.logContent == false)
    #expect(config.adminKeyEnv == "BAKEOFF_ADMIN_KEY" && config.adminKey == nil)
    #expect(config.storePath == "bakeoff.db" && config.flushIntervalMs == 50 && config.queueCapacity == 100_000)
    let e = try #require(config.experiments.first)
    #expect(e.control == "control" && !e.perRequestAssignment && !e.logContent)
    let v = e.variants[0]
    #expect(v.upstream.timeoutMs == 300_000 && v.upstream.connectTimeoutMs == 5_000)
    #expect(v.upstream.apiKeyEnv == nil && v.upstream.apiKey == nil && v.upstream.headers.isEmpty)
    #expect(v.systemPrompt == nil && v.parameters.isEmpty)
    #expect(e.analysis.alpha == nil && e.analysis.primaryMetric == nil && e.analysis.experiment == "exp")
}

@Test func settingsAreRead() throws {
    let json = config(
        top: """
            "listen": "localhost:9090", "threads": 8, "max_body_bytes": 2048, "user_header": "X-User",
            "log_content": true, "admin_key_env": "ADMIN", "store": {"path": "/tmp/x.db", "flush_interval_ms": 10,
            "queue_capacity": 5}, "upstream_defaults": {"timeout_ms": 1000, "connect_timeout_ms": 100},
            """,
        experiment: "\"log_content\": false, \"control\": \"treatment\",",
        upstream: "\"timeout_ms\": 7, \"api_key_env\": \"KEY_1\",")
    let loaded = try parse(json, environment: ["ADMIN": "admin-secret-0123456789", "KEY_1": "k1"])
    #expect(loaded.listenHost == "127.0.0.1" && loaded.listenPort == 9090)
    #expect(loaded.threads == 8 && loaded.maxBodyBytes == 2048 && loaded.userHeader == "X-User" && loaded.logContent)
    #expect(loaded.adminKey == "admin-secret-0123456789")
    #expect(loaded.storePath == "/tmp/x.db" && loaded.flushIntervalMs == 10 && loaded.queueCapacity == 5)
    let e = loaded.experiments[0]
    #expect(!e.logContent && e.control == "treatment" && e.analysis.control == "treatment")
    #expect(e.variants[0].upstream.timeoutMs == 7 && e.variants[0].upstream.connectTimeoutMs == 100)
    #expect(e.variants[0].upstream.apiKey == "k1" && e.variants[0].upstream.apiKeyEnv == "KEY_1")
    #expect(e.variants[1].upstream.timeoutMs == 1000 && e.variants[1].upstream.apiKey == nil)
    #expect(!loaded.summary().contains("admin-secret-0123456789") && !loaded.summary().contains("k1)"))
}

@Test func aPostgresStoreTakesItsPasswordFromTheNamedVariable() throws {
    let url = "postgresql://bakeoff@db.internal:5432/events"
    let key = ["BAKEOFF_FEEDBACK_KEY": "shared-key-0123456789"]
    let loaded = try parse(config(top: "\"store\": {\"url\": \"\(url)\", \"password_env\": \"EVENTS_PASSWORD\"},"),
                           environment: key.merging(["EVENTS_PASSWORD": "s3cret"]) { a, _ in a })
    #expect(loaded.storePath == url)
    #expect(loaded.storePassword == "s3cret")
    let plain = try parse(config(top: "\"store\": {\"url\": \"\(url)\"},"), environment: key)
    #expect(plain.storePath == url && plain.storePassword == nil && plain.sharedStoreProblem == nil)
    // Without one feedback key for every gateway, a token from one would be refused by the next.
    #expect(problems(config(top: "\"store\": {\"url\": \"\(url)\"},")) == ["gateway.json: store.url: gateways sharing a PostgreSQL store must sign feedback tokens with one key: set $BAKEOFF_FEEDBACK_KEY (at least 16 bytes) to the same value for every gateway"])
    var overridden = try parse(config())
    overridden.storePath = url
    #expect(overridden.sharedStoreProblem?.contains("$BAKEOFF_FEEDBACK_KEY") == true)
    #expect(try parse(config()).storePassword == nil)
}

@Test func storeRetentionIsReadAndShown() throws {
    let kept = try parse(config(top: "\"store\": {\"retention_days\": 30},"))
    #expect(kept.retentionDays == 30)
    #expect(kept.summary().contains("events kept 30 days"))
    let forever = try parse(config())
    #expect(forever.retentionDays == nil)
    #expect(forever.summary().contains("events kept forever"))
}

@Test func controlDefaultsToTheFirstVariantWithoutOneNamedControl() throws {
    let json = config(variants: """
        [{"name": "b", "weight": 0.25, "upstream": {"base_url": "https://api.example.com/v1", "model": "x"}},
         {"name": "a", "weight": 0.75, "upstream": {"base_url": "https://api.example.com:8443/v1", "model": "y"}}]
        """)
    let e = try parse(json).experiments[0]
    #expect(e.control == "b")
    #expect(e.variants.map(\.name) == ["b", "a"] && e.allocation.names == ["b", "a"])
}

@Test func splitShortcutAssignsLikeTheCoreAssigner() throws {
    let json = config(experiment: "\"split\": 0.2,", variants: """
        [{"name": "control", "upstream": {"base_url": "http://127.0.0.1:9001/v1", "model": "m1"}},
         {"name": "treatment", "upstream": {"base_url": "http://127.0.0.1:9002/v1", "model": "m2"}}]
        """)
    let e = try parse(json).experiments[0]
    let reference = Assigner(experiment: "exp", allocation: try Allocation(split: 0.2))
    #expect(e.allocation == reference.allocation)
    #expect(e.variant(named: "treatment")?.weight == 0.2 && e.variant(named: "control")?.weight == 0.8)
    var treated = 0
    for i in 0..<1000 {
        let user = "user-\(i)"
        let variant = e.variants[e.assigner.armIndex(for: user)]
        #expect(variant.name == reference.variant(for: user))
        #expect(e.variant(for: user).name == variant.name)
        #expect(variant.upstream.model == (variant.name == "treatment" ? "m2" : "m1"))
        if variant.name == "treatment" { treated += 1 }
    }
    #expect((150...250).contains(treated))
}

@Test func weightedVariantsAssignLikeTheCoreAssigner() throws {
    let e = try parse(config()).experiments[0]
    let reference = Assigner(experiment: "exp", allocation: try Allocation(arms: [.init(name: "control", weight: 0.5), .init(name: "treatment", weight: 0.5)]))
    for i in 0..<1000 { #expect(e.variant(for: "u\(i)").name == reference.variant(for: "u\(i)")) }
}

@Test func parameterValuesKeepExactJSONAndOrder() throws {
    let json = config(control: """
        "parameters": {"temperature": 0.7056398416886543, "top_p": 1e-7, "max_tokens": 512, "seed": -3,
                       "logit_bias": {"50256": -100, "13": 2.5}, "stop": ["\\n", "END \\"q\\" \\u00e9"],
                       "n": null, "echo": false, "z_last": 0.1},
        """)
    let parameters = try parse(json).experiments[0].variants[0].parameters
    #expect(parameters.map(\.key) == ["temperature", "top_p", "max_tokens", "seed", "logit_bias", "stop", "n", "echo", "z_last"])
    #expect(parameters.map(\.json) == [
        "0.7056398416886543", "1e-07", "512", "-3", "{\"50256\":-100,\"13\":2.5}", "[\"\\n\",\"END \\\"q\\\" é\"]",
        "null", "false", "0.1",
    ])
    #expect(Double(parameters[0].json) == 0.7056398416886543)
    // Each value is valid JSON that decodes to what was written.
    for p in parameters {
        #expect((try? JSONSerialization.jsonObject(with: Data(p.json.utf8), options: .fragmentsAllowed)) != nil, "\(p.json)")
    }
}

@Test func headersKeepTheirOrder() throws {
    let json = config(upstream: "\"headers\": {\"X-Zeta\": \"1\", \"X-Alpha\": \"two words\", \"X-Mid\": \"\"},")
    let headers = try parse(json).experiments[0].variants[0].upstream.headers
    #expect(headers.map(\.name) == ["X-Zeta", "X-Alpha", "X-Mid"])
    #expect(headers.map(\.value) == ["1", "two words", ""])
}

@Test func apiKeysComeFromTheEnvironment() throws {
    let json = config(upstream: "\"api_key_env\": \"V1_API_KEY\",")
    let loaded = try parse(json, environment: ["V1_API_KEY": "sk-live-abc", "OTHER": "x"])
    #expect(loaded.experiments[0].variants[0].upstream.apiKey == "sk-live-abc")
    #expect(loaded.experiments[0].variants[0].upstream.apiKeyEnv == "V1_API_KEY")
    #expect(loaded.summary().contains("$V1_API_KEY (set)"))
    #expect(!loaded.summary().contains("sk-live-abc"))

    #expect(problems(json, environment: ["OTHER": "x"]) == [
        "gateway.json: experiments[0].variants[0].upstream.api_key_env: the environment variable V1_API_KEY is not set; export it with the upstream's API key, or remove \"api_key_env\" if the upstream needs no key",
    ])
    // A key pasted into api_key_env by mistake is not echoed back.
    let pasted = config(upstream: "\"api_key_env\": \"sk-live-abc123\",")
    let found = problems(pasted)
    #expect(found.count == 1 && found[0].contains("upstream.api_key_env: must be the name of an environment variable"))
    #expect(!found[0].contains("sk-live-abc123"))
}

struct ErrorCase: Sendable, CustomTestStringConvertible {
    var json: String
    var expected: String
    var testDescription: String { expected }
    init(_ json: String, _ expected: String) {
        self.json = json
        self.expected = expected
    }
}

private let v0 = "experiments[0].variants[0]"

private let errorCases: [ErrorCase] = [
    ErrorCase(config(top: "\"listen\": \"example.com:80\","), "gateway.json: listen: \"example.com:80\" is not host:port"),
    ErrorCase(config(top: "\"listen\": \"127.0.0.1:70000\","), "gateway.json: listen: \"127.0.0.1:70000\" is not host:port"),
    ErrorCase(config(top: "\"listen\": \"127.0.0.1\","), "gateway.json: listen: "),
    ErrorCase(config(top: "\"listen\": \"256.0.0.1:80\","), "gateway.json: listen: "),
    ErrorCase(config(top: "\"listen\": 8080,"), "gateway.json: listen: must be a string, got 8080"),
    ErrorCase(config(top: "\"threads\": 0,"), "gateway.json: threads: must be a whole number of at least 1 and at most 64, got 0"),
    ErrorCase(config(top: "\"threads\": 65,"), "gateway.json: threads: must be a whole number of at least 1 and at most 64, got 65"),
    ErrorCase(config(top: "\"threads\": 2.5,"), "gateway.json: threads: must be a whole number"),
    ErrorCase(config(top: "\"max_body_bytes\": 1023,"), "gateway.json: max_body_bytes: must be a whole number of at least 1024, got 1023"),
    ErrorCase(config(top: "\"user_header\": \"X User\","), "gateway.json: user_header: \"X User\" is not a valid HTTP header name"),
    ErrorCase(config(top: "\"user_header\": \"\","), "gateway.json: user_header: \"\" is not a valid HTTP header name"),
    ErrorCase(config(top: "\"log_content\": \"yes\","), "gateway.json: log_content: must be true or false, got \"yes\""),
    ErrorCase(config(top: "\"admin_key_env\": \"MY-KEY\","), "gateway.json: admin_key_env: must be the name of an environment variable"),
    ErrorCase(config(top: "\"store\": {\"path\": \"\"},"), "gateway.json: store.path: must not be empty"),
    ErrorCase(config(top: "\"store\": {\"flush_interval_ms\": 0},"), "gateway.json: store.flush_interval_ms: must be a whole number of at least 1 and at most 10000, got 0"),
    ErrorCase(config(top: "\"store\": {\"flush_interval_ms\": 10001},"), "gateway.json: store.flush_interval_ms: must be a whole number of at least 1 and at most 10000, got 10001"),
    ErrorCase(config(top: "\"store\": {\"queue_capacity\": 0},"), "gateway.json: store.queue_capacity: must be a whole number of at least 1, got 0"),
    ErrorCase(config(top: "\"store\": {\"file\": \"x\"},"), "gateway.json: store.file: unknown key (known keys here: path, url, password_env, flush_interval_ms, queue_capacity, retention_days)"),
    ErrorCase(config(top: "\"store\": {\"path\": \"a.db\", \"url\": \"postgresql://u@db/x\"},"), "gateway.json: store.url: give \"path\" (an SQLite file) or \"url\" (a PostgreSQL server), not both"),
    ErrorCase(config(top: "\"store\": {\"url\": \"postgresql://u:secret@db/x\"},"), "gateway.json: store.url: holds a password; leave it out of the URL"),
    ErrorCase(config(top: "\"store\": {\"url\": \"mysql://db/x\"},"), "gateway.json: store.url: must be a PostgreSQL URL"),
    ErrorCase(config(top: "\"store\": {\"path\": \"a.db\", \"password_env\": \"PGPASS\"},"), "gateway.json: store.password_env: only goes with \"url\""),
    ErrorCase(config(top: "\"store\": {\"url\": \"postgresql://u@db/x\", \"password_env\": \"BAKEOFF_TEST_UNSET\"},"), "gateway.json: store.password_env: $BAKEOFF_TEST_UNSET is not set"),
    ErrorCase(config(top: "\"store\": {\"url\": \"postgresql://u@db/x\", \"password_env\": \"A-B\"},"), "gateway.json: store.password_env: must be the name of an environment variable"),
    ErrorCase(config(top: "\"store\": {\"retention_days\": 0},"), "gateway.json: store.retention_days: must be a whole number of at least 1 and at most 36500, got 0"),
    ErrorCase(config(top: "\"upstream_defaults\": {\"timeout_ms\": 0},"), "gateway.json: upstream_defaults.timeout_ms: must be a whole number of at least 1, got 0"),
    ErrorCase(config(top: "\"thread\": 4,"), "gateway.json: thread: unknown key; did you mean \"threads\"?"),
    ErrorCase("{\"experiments\": []}", "gateway.json: experiments: must list at least one experiment"),
    ErrorCase("{\"listen\": \"127.0.0.1:8080\"}", "gateway.json: experiments: missing: list at least one experiment"),
    ErrorCase("{\"experiments\": {}}", "gateway.json: experiments: must be an array of objects, got an object"),
    ErrorCase(config(experiment: "\"name\": \"\","), "gateway.json: experiments[0].name: "),
    ErrorCase(
        """
        {"experiments": [{"name": "exp", "model": "", "variants": [{"name": "a", "weight": 1, "upstream": {"base_url": "http://h/v1", "model": "m"}}]}]}
        """, "gateway.json: experiments[0].model: must not be empty"),
    ErrorCase(
        """
        {"experiments": [{"model": "bot", "variants": [{"name": "a", "weight": 1, "upstream": {"base_url": "http://h/v1", "model": "m"}}]}]}
        """, "gateway.json: experiments[0].name: each experiment needs a \"name\""),
    ErrorCase(
        """
        {"experiments": [{"name": "e1", "model": "bot", "variants": [{"name": "a", "weight": 1, "upstream": {"base_url": "http://h/v1", "model": "m"}}]},
                         {"name": "e1", "model": "bot2", "variants": [{"name": "a", "weight": 1, "upstream": {"base_url": "http://h/v1", "model": "m"}}]}]}
        """, "gateway.json: experiments[1].name: \"e1\" is already the name of experiments[0]; names must be unique"),
    ErrorCase(
        """
        {"experiments": [{"name": "e1", "model": "bot", "variants": [{"name": "a", "weight": 1, "upstream": {"base_url": "http://h/v1", "model": "m"}}]},
                         {"name": "e2", "model": "bot", "variants": [{"name": "a", "weight": 1, "upstream": {"base_url": "http://h/v1", "model": "m"}}]}]}
        """, "gateway.json: experiments[1].model: \"bot\" is already the model alias of experiments[0]"),
    ErrorCase(config(variants: "[]"), "gateway.json: experiments[0].variants: must list at least one variant"),
    ErrorCase(config(treatment: "\"name\": \"control\","), "gateway.json: experiments[0].variants[1].name: this key appears twice"),
    ErrorCase(config(variants: """
        [{"name": "a", "weight": 0.5, "upstream": {"base_url": "http://h/v1", "model": "m"}},
         {"name": "a", "weight": 0.5, "upstream": {"base_url": "http://h/v1", "model": "m"}}]
        """), "gateway.json: experiments[0].variants[1].name: \"a\" is already the name of variants[0]; names must be unique"),
    ErrorCase(config(experiment: "\"split\": 0.3,", variants: """
        [{"name": "a", "upstream": {"base_url": "http://h/v1", "model": "m"}},
         {"name": "b", "upstream": {"base_url": "http://h/v1", "model": "m"}}]
        """), "gateway.json: experiments[0].split: the \"split\" shortcut needs exactly two variants named \"control\" and \"treatment\""),
    ErrorCase(config(experiment: "\"split\": 1.5,"), "gateway.json: experiments[0].split: must be between 0 and 1, got 1.5"),
    ErrorCase(config(experiment: "\"split\": 0.3,"), "gateway.json: \(v0).weight: give either \"split\" on the experiment or a \"weight\" on every variant, not both"),
    ErrorCase(config(variants: """
        [{"name": "control", "weight": 0.5, "upstream": {"base_url": "http://h/v1", "model": "m"}},
         {"name": "treatment", "weight": 0.4, "upstream": {"base_url": "http://h/v1", "model": "m"}}]
        """), "gateway.json: experiments[0].variants: weights sum to 0.9, they must sum to 1"),
    ErrorCase(config(variants: """
        [{"name": "control", "weight": 0.5, "upstream": {"base_url": "http://h/v1", "model": "m"}},
         {"name": "treatment", "upstream": {"base_url": "http://h/v1", "model": "m"}}]
        """), "gateway.json: experiments[0].variants[1].weight: each variant needs a \"weight\""),
    ErrorCase(config(control: "\"weight\": -0.5,"), "gateway.json: \(v0).weight: this key appears twice"),
    ErrorCase(config(experiment: "\"control\": \"baseline\","), "gateway.json: experiments[0].control: \"baseline\" is not a variant of this experiment (variants: control, treatment)"),
    ErrorCase(config(upstream: "\"bogus\": 1,"), "gateway.json: \(v0).upstream.bogus: unknown key"),
    ErrorCase(config(control: "\"upstreams\": 1,"), "gateway.json: \(v0).upstreams: unknown key; did you mean \"upstream\"?"),
    ErrorCase(config(experiment: "\"per_request\": true,"), "gateway.json: experiments[0].per_request: unknown key"),
    ErrorCase(config(variants: "[{\"name\": \"control\", \"weight\": 1}]"), "gateway.json: \(v0).upstream: each variant needs an \"upstream\""),
    ErrorCase(config(variants: "[{\"name\": \"control\", \"weight\": 1, \"upstream\": {\"base_url\": \"ftp://h/v1\", \"model\": \"m\"}}]"),
              "gateway.json: \(v0).upstream.base_url: must start with http:// or https://"),
    ErrorCase(config(variants: "[{\"name\": \"control\", \"weight\": 1, \"upstream\": {\"base_url\": \"http:///v1\", \"model\": \"m\"}}]"),
              "gateway.json: \(v0).upstream.base_url: has no host"),
    ErrorCase(config(variants: "[{\"name\": \"control\", \"weight\": 1, \"upstream\": {\"base_url\": \"http://h:99999/v1\", \"model\": \"m\"}}]"),
              "gateway.json: \(v0).upstream.base_url: has an invalid port \"99999\""),
    ErrorCase(config(variants: "[{\"name\": \"control\", \"weight\": 1, \"upstream\": {\"base_url\": \"http://h/v1?x=1\", \"model\": \"m\"}}]"),
              "gateway.json: \(v0).upstream.base_url: must not have a query or fragment"),
    ErrorCase(config(variants: "[{\"name\": \"control\", \"weight\": 1, \"upstream\": {\"base_url\": \"http://u:p@h/v1\", \"model\": \"m\"}}]"),
              "gateway.json: \(v0).upstream.base_url: must not contain credentials"),
    ErrorCase(config(variants: "[{\"name\": \"control\", \"weight\": 1, \"upstream\": {\"base_url\": \"http://h/v1\", \"model\": \"\"}}]"),
              "gateway.json: \(v0).upstream.model: must not be empty"),
    ErrorCase(config(variants: "[{\"name\": \"control\", \"weight\": 1, \"upstream\": {\"base_url\": \"http://h/v1\"}}]"),
              "gateway.json: \(v0).upstream.model: each upstream needs a \"model\""),
    ErrorCase(config(upstream: "\"headers\": {\"X Team\": \"a\"},"), "gateway.json: \(v0).upstream.headers.X Team: \"X Team\" is not a valid HTTP header name"),
    ErrorCase(config(upstream: "\"headers\": {\"X-Team\": \"a\\r\\nX-Evil: 1\"},"), "gateway.json: \(v0).upstream.headers.X-Team: header values must not contain line breaks"),
    ErrorCase(config(upstream: "\"headers\": {\"X-Team\": 3},"), "gateway.json: \(v0).upstream.headers.X-Team: header values must be strings, got 3"),
    ErrorCase(config(upstream: "\"headers\": {\"authorization\": \"Bearer sk-1\"},"), "gateway.json: \(v0).upstream.headers.authorization: the Authorization header cannot be set here"),
    ErrorCase(config(upstream: "\"headers\": {\"Authorization\": \"Bearer sk-1\"},"), "name it in \"api_key_env\""),
    ErrorCase(config(upstream: "\"headers\": {\"Content-Length\": \"5\"},"), "gateway.json: \(v0).upstream.headers.Content-Length: Content-Length is set by the gateway"),
    ErrorCase(config(upstream: "\"headers\": {\"X-A\": \"1\", \"x-a\": \"2\"},"), "gateway.json: \(v0).upstream.headers.x-a: the same header as \"X-A\""),
    ErrorCase(config(upstream: "\"headers\": [\"X-A\"],"), "gateway.json: \(v0).upstream.headers: must be an object"),
    ErrorCase(config(upstream: "\"api_key_env\": \"MISSING_KEY\","), "gateway.json: \(v0).upstream.api_key_env: the environment variable MISSING_KEY is not set"),
    ErrorCase(config(upstream: "\"timeout_ms\": 0,"), "gateway.json: \(v0).upstream.timeout_ms: must be a whole number of at least 1, got 0"),
    ErrorCase(config(control: "\"parameters\": {\"stream\": true},"), "gateway.json: \(v0).parameters.stream: cannot be set here"),
    ErrorCase(config(control: "\"parameters\": {\"model\": \"x\"},"), "gateway.json: \(v0).parameters.model: cannot be set here: the upstream's model is \"upstream.model\""),
    ErrorCase(config(control: "\"parameters\": {\"messages\": []},"), "gateway.json: \(v0).parameters.messages: cannot be set here"),
    ErrorCase(config(control: "\"parameters\": {\"prompt\": \"x\"},"), "gateway.json: \(v0).parameters.prompt: cannot be set here"),
    ErrorCase(config(control: "\"parameters\": {\"stream_options\": {}},"), "gateway.json: \(v0).parameters.stream_options: cannot be set here"),
    ErrorCase(config(control: "\"parameters\": {\"user\": \"u\"},"), "gateway.json: \(v0).parameters.user: cannot be set here"),
    ErrorCase(config(control: "\"parameters\": [1],"), "gateway.json: \(v0).parameters: must be an object of sampling parameters"),
    ErrorCase(config(control: "\"system_prompt\": \"\","), "gateway.json: \(v0).system_prompt: must not be empty"),
    ErrorCase(config(control: "\"system_prompt\": 5,"), "gateway.json: \(v0).system_prompt: must be a string, got 5"),
    ErrorCase(config(experiment: "\"analysis\": {\"primary_metric\": \"nope\"},"), "gateway.json: experiments[0].analysis.primary_metric: \"nope\" is not a metric"),
    ErrorCase(config(experiment: "\"analysis\": {\"alpha\": 2},"), "gateway.json: experiments[0].analysis.alpha: must be between"),
    ErrorCase(config(experiment: "\"analysis\": {\"covariates\": \"no-such-covariates.csv\"},"), "experiments[0].analysis.covariates: "),
    ErrorCase(config(experiment: "\"analysis\": {\"method\": \"bayes\"},"), "gateway.json: experiments[0].analysis.method"),
    ErrorCase(config(experiment: "\"analysis\": {\"metrics\": [{\"name\": \"csat\", \"margin\": 0.1}]},"), "a margin applies to guardrails"),
    ErrorCase(config(experiment: "\"analysis\": {\"metrics\": [{\"name\": \"csat\", \"goal\": \"sideways\"}]},"),
              "gateway.json: experiments[0].analysis.metrics[0].goal: \"sideways\" is not one of"),
    ErrorCase(config(experiment: "\"analysis\": {\"alpah\": 0.1},"), "gateway.json: experiments[0].analysis.alpah: unknown key"),
    ErrorCase(config(experiment: "\"analysis\": {\"split\": 0.5},"), "gateway.json: experiments[0].analysis.split: set by the experiment itself"),
    ErrorCase(config(experiment: "\"analysis\": {\"experiment\": \"x\"},"), "gateway.json: experiments[0].analysis.experiment: set by the experiment itself (\"name\" of experiments[0])"),
    ErrorCase(config(experiment: "\"analysis\": 1,"), "gateway.json: experiments[0].analysis: must be an object, got 1"),
    ErrorCase("", "gateway.json: the file is empty; expected a JSON object"),
    ErrorCase("[1, 2]", "gateway.json: expected a JSON object at the top level, got an array"),
    ErrorCase("{\"threads\": 2 \"listen\": 1}", "gateway.json: not valid JSON: line 1, column 15: expected ',' or '}' after the value of \"threads\""),
    ErrorCase("{\"threads\": 2,\n \"listen\": [1 2]}", "gateway.json: not valid JSON: line 2, column 15: expected ',' or ']' after an array element"),
    ErrorCase("{\"threads\": 2,\n  \"listen\": nope}", "gateway.json: not valid JSON: line 2, column 13: nope is not a JSON value"),
    ErrorCase("{\"listen\": \"127.0.0.1:80}", "gateway.json: not valid JSON: line 1, column 12: unclosed string"),
    ErrorCase("{\"a\": 1} x", "gateway.json: not valid JSON: line 1, column 10: unexpected text after the end"),
    ErrorCase("{\"threads\": 2,", "gateway.json: not valid JSON: line 1, column 15: expected a key in double quotes"),
    ErrorCase("{\"threads\": 2, \"threads\": 3, \"experiments\": []}", "gateway.json: threads: this key appears twice in the same object"),
]

@Test(arguments: errorCases)
func validationErrors(_ c: ErrorCase) {
    let found = problems(c.json)
    #expect(found.contains { $0.contains(c.expected) }, "expected \(c.expected) in:\n\(found.joined(separator: "\n"))")
    // The thrown error says the same.
    do {
        _ = try parse(c.json)
        Issue.record("no error thrown")
    } catch {
        #expect(error.description.contains(c.expected))
    }
}

@Test func severalErrorsAreReportedTogether() {
    let json = config(
        top: "\"listen\": \"nowhere\", \"threads\": 0, \"store\": {\"path\": \"\", \"queue\": 1},",
        upstream: "\"headers\": {\"Authorization\": \"x\"},",
        variants: nil)
        .replacingOccurrences(of: "http://127.0.0.1:9002/v1", with: "localhost:9002")
    let found = problems(json)
    let expected = [
        "gateway.json: listen: ",
        "gateway.json: threads: ",
        "gateway.json: store.path: ",
        "gateway.json: store.queue: unknown key",
        "gateway.json: experiments[0].variants[0].upstream.headers.Authorization: ",
        "gateway.json: experiments[0].variants[1].upstream.base_url: must start with http:// or https://",
    ]
    #expect(found.count == expected.count, "\(found.joined(separator: "\n"))")
    for fragment in expected {
        #expect(found.contains { $0.hasPrefix(fragment) }, "missing \(fragment) in:\n\(found.joined(separator: "\n"))")
    }
    do {
        _ = try parse(json)
        Issue.record("no error thrown")
    } catch {
        let lines = error.description.split(separator: "\n").map(String.init)
        #expect(lines.first == "gateway.json: 6 problems:")
        #expect(Array(lines.dropFirst()) == found)
    }
}

@Test func missingFileAndDirectory() {
    for (path, fragment) in [("/nonexistent/gateway.json", "/nonexistent/gateway.json: no such file"), ("/tmp", "/tmp: is a directory")] {
        do {
            _ = try GatewayConfig.load(path: path, environment: [:])
            Issue.record("loaded \(path)")
        } catch {
            #expect(error.description.hasPrefix(fragment), "\(error)")
        }
    }
}

@Test func invalidJSONSaysWhere() {
    let found = problems("{\n  \"threads\": 2\n  \"listen\": \"x\"\n}")
    #expect(found == ["gateway.json: not valid JSON: line 3, column 3: expected ',' or '}' after the value of \"threads\" (a missing comma?)"])
}

@Test func trailingCommasKeepKeyOrder() throws {
    // JSONDecoder accepts trailing commas; the order of keys must survive them.
    let json = config(control: "\"parameters\": {\"b\": [1, 2,], \"a\": 1,},")
    let parameters = try parse(json).experiments[0].variants[0].parameters
    #expect(parameters.map(\.key) == ["b", "a"])
    #expect(parameters.map(\.json) == ["[1,2]", "1"])
}


@Test func connectionLimitsAndTheMemoryBudget() throws {
    let defaults = try parse(config()).limits
    #expect(defaults.maxConnections == nil && defaults.maxConnectionsPerAddress == nil)
    #expect(defaults.headerTimeoutMs == 10_000 && defaults.bodyTimeoutMs == 30_000 && defaults.idleTimeoutMs == 75_000)
    #expect(defaults.memoryBudgetBytes == 256 << 20)
    let set = try parse(config(top: """
        "max_connections": 2000, "max_connections_per_address": 0, "header_timeout_ms": 500, "body_timeout_ms": 600,
        "idle_timeout_ms": 7000, "memory_budget_bytes": 20971520,
        """))
    #expect(set.limits.maxConnections == 2000 && set.limits.maxConnectionsPerAddress == 0)
    #expect(set.limits.headerTimeoutMs == 500 && set.limits.bodyTimeoutMs == 600 && set.limits.idleTimeoutMs == 7000)
    #expect(set.limits.memoryBudgetBytes == 20 << 20)
    #expect(set.summary().contains("2000 connections, no limit per client address; headers within 500 ms, bodies within 600 ms, idle connections closed after 7 s; 20 MiB"))
    // A larger body limit than the default budget raises the budget with it.
    #expect(try parse(config(top: "\"max_body_bytes\": 536870912,")).limits.memoryBudgetBytes == 512 << 20)

    #expect(problems(config(top: "\"max_connections\": 0,")) == ["gateway.json: max_connections: must be a whole number of at least 1 and at most 1000000, got 0"])
    #expect(problems(config(top: "\"max_connections_per_address\": -1,")) == ["gateway.json: max_connections_per_address: must be a whole number of at least 0 and at most 1000000, got -1"])
    #expect(problems(config(top: "\"header_timeout_ms\": 50,")) == ["gateway.json: header_timeout_ms: must be a whole number of at least 100 and at most 3600000, got 50"])
    #expect(problems(config(top: "\"body_timeout_ms\": \"1s\",")).first?.hasPrefix("gateway.json: body_timeout_ms: must be a number") == true)
    #expect(problems(config(top: "\"idle_timeout_ms\": 999,")) == ["gateway.json: idle_timeout_ms: must be a whole number of at least 1000 and at most 3600000, got 999"])
    #expect(problems(config(top: "\"memory_budget_bytes\": 2097152, \"max_body_bytes\": 4194304,")) == ["gateway.json: memory_budget_bytes: must be at least max_body_bytes (4194304), or a body of the largest allowed size could never be taken"])
}

@Suite("Trace export in the gateway config (otlp, OTEL_* variables)")
struct TraceExportConfigTests {
    @Test("an otlp block: the endpoint completed, headers from their variable, resource attributes, batching")
    func block() throws {
        let c = try parse(config(top: """
            "otlp": {"endpoint": "http://127.0.0.1:6006", "protocol": "http/json", "headers_env": "OTLP_HEADERS",
                     "service_name": "support-gw", "resource_attributes": {"openinference.project.name": "bot"},
                     "timeout_ms": 2000, "export_interval_ms": 250, "batch_size": 64, "queue_size": 1000},
            """), environment: ["OTLP_HEADERS": "api_key=s%20ecret,x-team=a"])
        let t = try #require(c.traceExport)
        #expect(t.endpoint == "http://127.0.0.1:6006/v1/traces")
        #expect(t.encoding == .json)
        #expect(t.headers == ["api_key: s ecret", "x-team: a"])
        #expect(t.serviceName == "support-gw")
        #expect(t.resourceAttributes.map(\.key) == ["openinference.project.name"])
        #expect(t.timeoutMs == 2000 && t.exportIntervalMs == 250 && t.batchSize == 64 && t.queueSize == 1000)
        #expect(c.summary().contains("traces     OTLP http/json to http://127.0.0.1:6006/v1/traces as service support-gw with headers api_key, x-team"))
        #expect(!c.summary().contains("s ecret"))
    }

    @Test("no block and no variables: no export; the variables alone turn it on; the block wins over them")
    func environment() throws {
        #expect(try parse(config()).traceExport == nil)
        let env = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SERVICE_NAME": "from-env", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"]
        let fromEnv = try #require(try parse(config(), environment: env).traceExport)
        #expect(fromEnv.endpoint == "http://collector:4318/v1/traces" && fromEnv.serviceName == "from-env" && fromEnv.encoding == .json)
        let both = try #require(try parse(config(top: #""otlp": {"endpoint": "http://mine:4318/v1/traces", "protocol": "http/protobuf"},"#), environment: env).traceExport)
        #expect(both.endpoint == "http://mine:4318/v1/traces" && both.encoding == .protobuf && both.serviceName == "from-env")
        #expect(try parse(config(), environment: env.merging(["OTEL_SDK_DISABLED": "true"]) { a, _ in a }).traceExport == nil)
        // A stray variable does not stop a gateway that exports nothing.
        #expect(problems(config(), environment: ["OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"]).isEmpty)
    }

    @Test("mistakes are reported with their JSON path", arguments: [
        (#""otlp": {"endpoint": "localhost:4318"},"#, "gateway.json: otlp.endpoint: \"localhost:4318\" is not an http:// or https:// URL"),
        (#""otlp": {"endpoint": "http://h:4318", "protocol": "grpc"},"#, "gateway.json: otlp.protocol: OTLP over gRPC is not supported"),
        (#""otlp": {"endpoint": "http://h:4318", "protcol": "http/json"},"#, "gateway.json: otlp.protcol: unknown key; did you mean \"protocol\"?"),
        (#""otlp": {"protocol": "http/json"},"#, "gateway.json: otlp.endpoint: missing"),
        (#""otlp": {"endpoint": "http://h", "headers_env": "NOT_SET_HERE"},"#, "gateway.json: otlp.headers_env: $NOT_SET_HERE is not set"),
        (#""otlp": {"endpoint": "http://h", "batch_size": 10, "queue_size": 5},"#, "gateway.json: otlp.batch_size: a batch of 10 spans is more than the queue holds (5)"),
        (#""otlp": {"endpoint": "http://h", "resource_attributes": {"a": 1}},"#, "gateway.json: otlp.resource_attributes: \"a\" must be a string, got 1"),
    ])
    func mistakes(_ top: String, _ expected: String) {
        let found = problems(config(top: top))
        #expect(found.contains { $0.hasPrefix(expected) }, "\(found)")
    }

    @Test("bad OTEL_* variables stop a gateway that exports, naming the variable")
    func badVariables() {
        let found = problems(config(top: #""otlp": {"endpoint": "http://h"},"#), environment: ["OTEL_EXPORTER_OTLP_TIMEOUT": "soon"])
        #expect(found == ["gateway.json: otlp: OTEL_EXPORTER_OTLP_TIMEOUT=soon is not a positive number of milliseconds (from the environment)"])
        let headers = problems(config(top: #""otlp": {"endpoint": "http://h", "headers_env": "H"},"#), environment: ["H": "bad name=1"])
        #expect(headers.first?.contains("\"bad name\" is not a valid HTTP header name") == true)
    }
}
