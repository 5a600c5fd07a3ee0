/// Where and how spans are exported: the resolved `otlp` config block and `OTEL_*` variables.
public struct ExportSettings: Sendable, Equatable {
    /// The URL spans are POSTed to (`…/v1/traces`).
    public var endpoint: String
    public var encoding: OTLPProtocol
    /// "Name: value" lines sent with every export (API keys of a hosted collector).
    public var headers: [String]
    public var serviceName: String
    /// Resource attributes besides `service.name` (e.g. `openinference.project.name` for Phoenix).
    public var resourceAttributes: [Attribute]
    /// The whole export call.
    public var timeoutMs: Int
    /// Longest a span waits in the queue before its batch is sent.
    public var exportIntervalMs: Int
    /// Most spans in one export.
    public var batchSize: Int
    /// Most spans waiting; more are dropped (and counted) rather than slow the requests down.
    public var queueSize: Int

    public enum Defaults {
        public static let serviceName = "bakeoff"
        public static let timeoutMs = 10_000
        public static let exportIntervalMs = 1_000
        public static let batchSize = 512
        public static let queueSize = 4_096
    }

    public init(endpoint: String, encoding: OTLPProtocol = .protobuf, headers: [String] = [], serviceName: String = Defaults.serviceName,
                resourceAttributes: [Attribute] = [], timeoutMs: Int = Defaults.timeoutMs, exportIntervalMs: Int = Defaults.exportIntervalMs,
                batchSize: Int = Defaults.batchSize, queueSize: Int = Defaults.queueSize) {
        self.endpoint = endpoint
        self.encoding = encoding
        self.headers = headers
        self.serviceName = serviceName
        self.resourceAttributes = resourceAttributes
        self.timeoutMs = timeoutMs
        self.exportIntervalMs = exportIntervalMs
        self.batchSize = batchSize
        self.queueSize = queueSize
    }

    /// The traces URL for an endpoint as a config gives it: a bare `scheme://host:port` (or with "/") gets
    /// OTLP's `/v1/traces`, any other path is used as it is. nil when it is not an http(s) URL with a host.
    public static func tracesURL(configEndpoint endpoint: String) -> String? {
        guard let (scheme, rest) = splitScheme(endpoint), !rest.isEmpty else { return nil }
        let hostEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        guard hostEnd > rest.startIndex, !rest[..<hostEnd].contains(where: { $0 == " " }) else { return nil }
        let path = rest[hostEnd...]
        return path.isEmpty || path == "/" ? scheme + "://" + rest[..<hostEnd] + "/v1/traces" : endpoint
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT`'s rule: a base URL to which `v1/traces` is always appended.
    public static func tracesURL(baseEndpoint endpoint: String) -> String? {
        guard tracesURL(configEndpoint: endpoint) != nil else { return nil }
        return (endpoint.hasSuffix("/") ? endpoint : endpoint + "/") + "v1/traces"
    }

    private static func splitScheme(_ url: String) -> (String, Substring)? {
        for scheme in ["http", "https"] where url.lowercased().hasPrefix(scheme + "://") {
            return (scheme, url.dropFirst(scheme.count + 3))
        }
        return nil
    }

    /// `k1=v1,k2=v2` (OTEL's format of headers and resource attributes), values percent-decoded; nil with the
    /// first malformed member.
    public static func keyValueList(_ text: String) -> Result<[(String, String)], ListError> {
        var out: [(String, String)] = []
        for member in text.split(separator: ",", omittingEmptySubsequences: true) {
            let trimmed = member.trimmingSpaces
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else { return .failure(ListError(member: String(trimmed))) }
            let key = trimmed[..<eq].trimmingSpaces
            guard !key.isEmpty, let value = percentDecoded(trimmed[trimmed.index(after: eq)...].trimmingSpaces) else {
                return .failure(ListError(member: String(trimmed)))
            }
            out.append((String(key), value))
        }
        return .success(out)
    }

    public struct ListError: Error, Equatable {
        /// The member that is not `key=value`.
        public var member: String
        public init(member: String) { self.member = member }
    }

    static func percentDecoded(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        var utf8 = Array(s.utf8)[...]
        while let c = utf8.popFirst() {
            if c == 0x25 {
                guard utf8.count >= 2, let v = parseHex(String(decoding: utf8.prefix(2), as: UTF8.self)) else { return nil }
                bytes.append(UInt8(v))
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}

/// What the standard `OTEL_*` variables say about trace export, read as OpenTelemetry's SDKs read them (the
/// traces-specific variable wins over the general one). Each field is nil when its variables are unset.
public struct OTelEnvironment: Sendable, Equatable {
    public var endpoint: String?
    public var encoding: OTLPProtocol?
    public var headers: [String]?
    public var timeoutMs: Int?
    public var serviceName: String?
    public var resourceAttributes: [Attribute]?
    public var exportIntervalMs: Int?
    public var batchSize: Int?
    public var queueSize: Int?
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
    public var disabled = false
    /// What is wrong in the variables, one sentence each naming the variable: the gateway does not start.
    public var problems: [String] = []
    /// What the variables ask that is not done (and how it is done instead), for stderr.
    public var notes: [String] = []

    public init(_ env: [String: String]) {
        func value(_ names: String...) -> (String, String)? {
            for name in names { if let v = env[name], !v.trimmedSpaces.isEmpty { return (name, v.trimmedSpaces) } }
            return nil
        }
        if let (_, v) = value("OTEL_SDK_DISABLED"), v.lowercased() == "true" { disabled = true }
        if let (name, v) = value("OTEL_TRACES_EXPORTER") {
            let exporters = v.lowercased().split(separator: ",").map { $0.trimmingSpaces }
            if exporters.contains("none") { disabled = true } else if !exporters.contains("otlp") {
                problems.append("\(name)=\(v): only \"otlp\" (or \"none\") is supported")
            }
        }
        if let (name, v) = value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            if ExportSettings.tracesURL(configEndpoint: v) != nil { endpoint = v } else { problems.append("\(name)=\(v) is not an http:// or https:// URL") }
        } else if let (name, v) = value("OTEL_EXPORTER_OTLP_ENDPOINT") {
            if let url = ExportSettings.tracesURL(baseEndpoint: v) { endpoint = url } else { problems.append("\(name)=\(v) is not an http:// or https:// URL") }
        }
        if let (name, v) = value("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL") {
            if let p = OTLPProtocol(rawValue: v) { encoding = p } else { problems.append("\(name)=\(v): \(OTLPProtocol.unsupported(v))") }
        }
        if let (name, v) = value("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS") {
            switch ExportSettings.keyValueList(v) {
            case .success(let list): headers = list.map { "\($0.0): \($0.1)" }
            case .failure(let e): problems.append("\(name): \"\(e.member)\" is not key=value (the list is key1=value1,key2=value2, values percent-encoded)")
            }
        }
        /// The first of `names` that is set, as a positive whole number of `unit`.
        func positive(_ unit: String, _ names: String...) -> Int? {
            for name in names {
                guard let raw = env[name], !raw.isEmpty else { continue }
                if let n = Int(raw.trimmedSpaces), n > 0 { return n }
                problems.append("\(name)=\(raw) is not a positive number of \(unit)")
                return nil
            }
            return nil
        }
        timeoutMs = positive("milliseconds", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
        exportIntervalMs = positive("milliseconds", "OTEL_BSP_SCHEDULE_DELAY")
        batchSize = positive("spans", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
        queueSize = positive("spans", "OTEL_BSP_MAX_QUEUE_SIZE")
        if let (_, v) = value("OTEL_SERVICE_NAME") { serviceName = v }
        if let (name, v) = value("OTEL_RESOURCE_ATTRIBUTES") {
            switch ExportSettings.keyValueList(v) {
            case .success(let list):
                resourceAttributes = list.filter { $0.0 != "service.name" }.map { Attribute($0.0, .string($0.1)) }
                if serviceName == nil, let s = list.first(where: { $0.0 == "service.name" }) { serviceName = s.1 }
            case .failure(let e): problems.append("\(name): \"\(e.member)\" is not key=value")
            }
        }
        if let compression = value("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"),
           compression.1.lowercased() != "none" {
            notes.append("\(compression.0)=\(compression.1): spans are sent uncompressed (only \"none\" is supported)")
        }
    }
}

extension OTLPProtocol {
    /// Why a protocol name is refused, naming the ones accepted.
    public static func unsupported(_ name: String) -> String {
        name == "grpc"
            ? "OTLP over gRPC is not supported: use \"http/protobuf\" (every collector, Phoenix included, takes it on its HTTP port, usually 4318) or \"http/json\""
            : "unknown protocol \"\(name)\": use \"http/protobuf\" or \"http/json\""
    }
}

extension String {
    var trimmedSpaces: String { String(Substring(self).trimmingSpaces) }
}
