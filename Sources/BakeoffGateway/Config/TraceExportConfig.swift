import BakeoffCore
import BakeoffTelemetry

extension GatewayConfigParser {
    /// The `otlp` block, completed by the standard `OTEL_*` variables for what it leaves out (or standing alone
    /// when there is no block): nil when spans are not exported.
    func parseTraceExport(_ root: inout FieldReader) -> (ExportSettings?, notes: [String]) {
        let env = OTelEnvironment(environment)
        var block = root.object("otlp")
        defer { block?.finish(known: Keys.otlp) }
        var endpoint = env.endpoint
        if let raw = block?.string("endpoint") {
            if let url = ExportSettings.tracesURL(configEndpoint: raw) { endpoint = url } else {
                block?.fail("endpoint", "\(JSONWriter.quote(raw)) is not an http:// or https:// URL, e.g. \"http://127.0.0.1:4318\" (\"/v1/traces\" is added to a URL without a path)")
                return (nil, [])
            }
        }
        guard block != nil || endpoint != nil else { return (nil, []) }
        if env.disabled && block == nil { return (nil, []) }
        // Problems are reported at the block, or at the top level for a gateway configured by the variables alone.
        // The variables' problems count only here: a stray OTEL_* setting must not stop a gateway that exports nothing.
        let reader = block ?? root
        for problem in env.problems { reader.fail(nil, "\(problem) (from the environment)") }
        guard let endpoint else {
            reader.fail("endpoint", "missing: the collector's URL, e.g. \"http://127.0.0.1:6006\" (or set OTEL_EXPORTER_OTLP_ENDPOINT)")
            return (nil, [])
        }
        var settings = ExportSettings(endpoint: endpoint)
        if let name = block?.string("protocol") {
            if let p = OTLPProtocol(rawValue: name) { settings.encoding = p } else { block?.fail("protocol", OTLPProtocol.unsupported(name)) }
        } else if let p = env.encoding {
            settings.encoding = p
        }
        settings.headers = env.headers ?? []
        if let name = block?.string("headers_env") {
            if !isEnvironmentName(name) {
                block?.fail("headers_env", notEnvironmentName)
            } else if let value = environment[name], !value.isEmpty {
                switch ExportSettings.keyValueList(value) {
                case .success(let list):
                    if let bad = list.first(where: { !isToken($0.0) }) {
                        block?.fail("headers_env", "$\(name): \(JSONWriter.quote(bad.0)) is not a valid HTTP header name")
                    } else if let bad = list.first(where: { $0.1.contains(where: { $0 == "\r" || $0 == "\n" }) }) {
                        block?.fail("headers_env", "$\(name): the value of \(bad.0) holds a line break")
                    } else {
                        settings.headers = list.map { "\($0.0): \($0.1)" }
                    }
                case .failure(let e):
                    block?.fail("headers_env", "$\(name): \(JSONWriter.quote(e.member)) is not key=value (the list is key1=value1,key2=value2, values percent-encoded, as OTEL_EXPORTER_OTLP_HEADERS)")
                }
            } else {
                block?.fail("headers_env", "$\(name) is not set: it should hold the headers, key1=value1,key2=value2")
            }
        }
        settings.serviceName = block?.nonEmptyString("service_name", missing: nil) ?? env.serviceName ?? settings.serviceName
        var attributes = env.resourceAttributes ?? []
        if let object = block?.raw("resource_attributes") {
            if let members = object.object {
                for member in members.members {
                    guard let value = member.value.string else {
                        block?.fail("resource_attributes", "\(JSONWriter.quote(member.key)) must be a string, got \(member.value.described)")
                        continue
                    }
                    attributes.removeAll { $0.key == member.key }
                    if member.key == "service.name" { settings.serviceName = value } else { attributes.append(Attribute(member.key, .string(value))) }
                }
            } else {
                block?.fail("resource_attributes", "must be an object of strings, e.g. {\"openinference.project.name\": \"support-bot\"}")
            }
        }
        settings.resourceAttributes = attributes
        settings.timeoutMs = block?.int("timeout_ms", in: 1...600_000) ?? env.timeoutMs ?? settings.timeoutMs
        settings.exportIntervalMs = block?.int("export_interval_ms", in: 1...600_000) ?? env.exportIntervalMs ?? settings.exportIntervalMs
        settings.batchSize = block?.int("batch_size", in: 1...100_000) ?? env.batchSize ?? settings.batchSize
        settings.queueSize = block?.int("queue_size", in: 1...10_000_000) ?? env.queueSize ?? settings.queueSize
        if settings.batchSize > settings.queueSize {
            reader.fail(block == nil ? nil : "batch_size", "a batch of \(settings.batchSize) spans is more than the queue holds (\(settings.queueSize)): raise queue_size or lower batch_size")
        }
        return (settings, env.notes)
    }
}
