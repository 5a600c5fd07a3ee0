import Testing
import BakeoffTelemetry

@Suite("Export settings: endpoints, header lists, OTEL_* variables")
struct ExportSettingsTests {
    @Test("a config endpoint without a path gets /v1/traces; with one it is used as is", arguments: [
        ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
        ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces"),
        ("https://collector.example.com/v1/traces", "https://collector.example.com/v1/traces"),
        ("https://cloud.langfuse.com/api/public/otel/v1/traces", "https://cloud.langfuse.com/api/public/otel/v1/traces"),
    ])
    func configEndpoint(_ given: String, _ url: String) {
        #expect(ExportSettings.tracesURL(configEndpoint: given) == url)
    }

    @Test("what is not an http(s) URL with a host is refused", arguments: ["127.0.0.1:4318", "grpc://x:4317", "http://", "ftp://x/", "http:///v1/traces", "http://a b/"])
    func badEndpoint(_ given: String) {
        #expect(ExportSettings.tracesURL(configEndpoint: given) == nil)
    }

    @Test("OTEL_EXPORTER_OTLP_ENDPOINT is a base: v1/traces is always appended")
    func baseEndpoint() {
        #expect(ExportSettings.tracesURL(baseEndpoint: "http://h:4318") == "http://h:4318/v1/traces")
        #expect(ExportSettings.tracesURL(baseEndpoint: "http://h:4318/otel/") == "http://h:4318/otel/v1/traces")
    }

    @Test("key=value lists: spaces trimmed, values percent-decoded, malformed members named")
    func lists() throws {
        let list = try ExportSettings.keyValueList(" api-key = abc%3D%3D , x=1,,").get()
        #expect(list.map(\.0) == ["api-key", "x"])
        #expect(list.map(\.1) == ["abc==", "1"])
        #expect(throws: ExportSettings.ListError(member: "novalue")) { try ExportSettings.keyValueList("a=1,novalue").get() }
        #expect(throws: ExportSettings.ListError(member: "a=%zz")) { try ExportSettings.keyValueList("a=%zz").get() }
    }

    @Test("the traces-specific variables win over the general ones; the SDK switches turn export off")
    func environment() {
        let env = OTelEnvironment([
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/custom",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20t",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment=prod",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        ])
        #expect(env.endpoint == "http://traces:4318/custom")
        #expect(env.encoding == .protobuf)
        #expect(env.headers == ["authorization: Bearer t"])
        #expect(env.timeoutMs == 2500)
        #expect(env.serviceName == "from-attrs")
        #expect(env.resourceAttributes == [Attribute("deployment.environment", .string("prod"))])
        #expect(env.exportIntervalMs == 200)
        #expect(env.problems.isEmpty)
        #expect(!env.disabled)
        #expect(OTelEnvironment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318"]).endpoint == "http://h:4318/v1/traces")
        #expect(OTelEnvironment(["OTEL_SDK_DISABLED": "TRUE"]).disabled)
        #expect(OTelEnvironment(["OTEL_TRACES_EXPORTER": "none"]).disabled)
        #expect(OTelEnvironment(["OTEL_SERVICE_NAME": "svc", "OTEL_RESOURCE_ATTRIBUTES": "service.name=other"]).serviceName == "svc")
    }

    @Test("bad variables are named with what is accepted; compression is a note, not a stop")
    func environmentProblems() {
        let env = OTelEnvironment([
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "soon",
            "OTEL_EXPORTER_OTLP_HEADERS": "broken",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        ])
        #expect(env.problems.count == 4)
        #expect(env.problems.contains { $0.hasPrefix("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && $0.contains("http/protobuf") })
        #expect(env.problems.contains { $0.hasPrefix("OTEL_EXPORTER_OTLP_TIMEOUT=soon") })
        #expect(env.problems.contains { $0.hasPrefix("OTEL_EXPORTER_OTLP_HEADERS") && $0.contains("broken") })
        #expect(env.problems.contains { $0.hasPrefix("OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318") })
        #expect(env.notes == ["OTEL_EXPORTER_OTLP_COMPRESSION=gzip: spans are sent uncompressed (only \"none\" is supported)"])
    }
}
