import BakeoffCore
import BakeoffStore
import Foundation

/// The body of `POST /v1/feedback`.
struct FeedbackBody: Decodable {
    var requestID: String?
    var conversationID: String?
    var name: String?
    var value: FeedbackValue?

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id", conversationID = "conversation_id", name, value
    }
}

/// A feedback value: a number, or true/false (1/0).
struct FeedbackValue: Decodable {
    var number: Double
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { number = b ? 1 : 0; return }
        number = try c.decode(Double.self)
    }
}

extension Gateway {
    /// Records feedback for a request or conversation; answers 200 only once the event is committed.
    func feedback(_ exchange: HTTPExchange) {
        func bad(_ message: String, param: String? = nil) {
            fail(exchange, OpenAIError(status: 400, message: message, type: "invalid_request_error", code: "invalid_feedback", param: param))
        }
        let body: FeedbackBody
        do {
            body = try JSONDecoder().decode(FeedbackBody.self, from: Data(exchange.request.body))
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return bad("feedback \"\(path)\" has the wrong type: \(path == "value" ? "a number or true/false" : "a string") is expected", param: path)
        } catch {
            return bad(exchange.request.body.isEmpty
                ? "the feedback body is empty: send {\"request_id\": ..., \"name\": ..., \"value\": ...}"
                : "the feedback body is not a JSON object: \(error)")
        }
        guard let name = body.name, !name.isEmpty else {
            return bad("feedback needs a \"name\" (task_completed, escalated, csat, thumbs_up or your own)", param: "name")
        }
        guard name.utf8.count <= 100, name.unicodeScalars.allSatisfy({ !Self.isControlOrSeparator($0) }) else {
            return bad("feedback \"name\" must be at most 100 characters without control characters or line separators", param: "name")
        }
        guard let value = body.value?.number else {
            return bad("feedback needs a \"value\": a number (e.g. CSAT 4) or true/false", param: "value")
        }
        guard value.isFinite, abs(value) <= 1e12 else { return bad("feedback \"value\" must be a finite number of at most 1e12 in size", param: "value") }
        let target: RecentRequests.Entry?
        if let id = body.requestID, !id.isEmpty {
            target = recent.request(id) ?? store.request(id: id)
            guard target != nil else {
                return fail(exchange, OpenAIError(status: 404, message: "no request with id \"\(id)\": use the x-bakeoff-request-id header of a response", type: "invalid_request_error", code: "request_not_found", param: "request_id"))
            }
        } else if let id = body.conversationID, !id.isEmpty {
            target = recent.conversation(id) ?? store.latestRequest(conversation: id)
            guard target != nil else {
                return fail(exchange, OpenAIError(status: 404, message: "no conversation with id \"\(id)\": send X-Bakeoff-Conversation with its requests first", type: "invalid_request_error", code: "conversation_not_found", param: "conversation_id"))
            }
        } else {
            return bad("feedback needs \"request_id\" (the x-bakeoff-request-id of a response) or \"conversation_id\"", param: "request_id")
        }
        let t = target!
        // A value the experiment's metrics cannot take would stop its analysis: refuse it here instead.
        let experiment = config.experiment(named: t.experiment)
        if let experiment {
            for metric in experiment.analysis.metrics where metric.source == .feedback(name) && metric.kind == .proportion {
                guard value == 0 || value == 1 else {
                    return bad("feedback \"\(name)\" feeds the yes/no metric \(metric.name): \"value\" must be true, false, 0 or 1, got \(JSONWriter.number(value))", param: "value")
                }
            }
        }
        var event = EventRecord(kind: .feedback, timestamp: WallClock.microseconds(), experiment: t.experiment)
        event.userID = t.userID
        event.conversationID = t.conversationID
        if body.requestID?.isEmpty == false { event.requestID = t.requestID }
        event.name = name
        event.value = value
        event.qa = t.qa
        // Metric labels stay bounded: names no metric uses are counted as "other".
        let label = (experiment.flatMap { feedbackNames[$0.name] } ?? []).contains(name) ? name : "other"
        let reply = "{\"status\":\"recorded\",\"experiment\":\(JSONWriter.quote(t.experiment)),\"variant\":\(JSONWriter.quote(t.variant)),\"conversation_id\":\(JSONWriter.quote(t.conversationID)),\"name\":\(JSONWriter.quote(name)),\"value\":\(JSONWriter.number(value))}"
        store.appendDurably(event) { [self] error in
            if let error {
                fail(exchange, OpenAIError(status: 503, message: "feedback not recorded: \(error); retry the request", type: "server_error", code: "store_unavailable"))
            } else {
                metrics.recordFeedback(experiment: t.experiment, name: label)
                respondJSON(exchange, 200, reply)
            }
        }
    }

    /// C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
    static func isControlOrSeparator(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u.value == 0x2028 || u.value == 0x2029
    }
}
