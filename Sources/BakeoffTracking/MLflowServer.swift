import Foundation

/// Recording a run went wrong: what happened, in one line a user can act on.
public struct TrackingError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The server's URL or the credentials in the environment are not usable: nothing was sent.
        case invalidSetup
        /// No answer: the server is down, the name does not resolve, a timeout.
        case unreachable
        /// An answer with an error status (MLflow's error code, when it sent one).
        case refused(status: Int, errorCode: String?)
        /// An answer that is not what MLflow sends.
        case badAnswer
        /// The experiment exists but is deleted: MLflow takes no run into it.
        case deletedExperiment
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// An MLflow tracking server: where it is and how to sign in, as MLflow's own client takes them.
public struct MLflowServer: Sendable, Equatable {
    /// The base URL the calls go to, without a trailing "/".
    public let uri: String
    /// The URL as it may be shown: without a user or password in it.
    public let displayURI: String
    /// "host:port" as the Host header sends it (MLflow refuses hosts it was not told about).
    public let hostHeader: String
    /// The Authorization header's value, when the environment gives credentials.
    public let authorization: String?
    /// Which environment variables the credentials came from, for messages.
    let credentialSource: String?

    /// The server at `uri` (http or https), with credentials from `environment`: `MLFLOW_TRACKING_TOKEN` (a
    /// bearer token) or `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD` (basic).
    public init(uri: String, environment: [String: String]) throws(TrackingError) {
        let lower = uri.lowercased()
        guard let scheme = ["http://", "https://"].first(where: { lower.hasPrefix($0) }) else {
            throw TrackingError(.invalidSetup, "\"\(uri)\" is not the URL of an MLflow tracking server: give one starting with http:// or https:// (MLflow's file:, sqlite: and databricks URIs need its Python client)")
        }
        let afterScheme = uri.dropFirst(scheme.count)
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? afterScheme.endIndex
        var authority = afterScheme[..<authorityEnd]
        var path = afterScheme[authorityEnd...]
        guard !path.contains("?") && !path.contains("#") else {
            throw TrackingError(.invalidSetup, "\"\(uri)\": give the tracking server's base URL, without a query or fragment")
        }
        // user:password@ goes to libcurl in `uri`, never into messages.
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        guard !authority.isEmpty else { throw TrackingError(.invalidSetup, "\"\(uri)\" names no host") }
        while path.hasSuffix("/") { path = path.dropLast() }
        var base = uri
        while base.hasSuffix("/") { base.removeLast() }
        self.uri = base
        displayURI = scheme + authority + path
        hostHeader = String(authority)

        let token = environment["MLFLOW_TRACKING_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        let user = environment["MLFLOW_TRACKING_USERNAME"].flatMap { $0.isEmpty ? nil : $0 }
        let password = environment["MLFLOW_TRACKING_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
        if let token {
            authorization = "Bearer \(token)"
            credentialSource = "MLFLOW_TRACKING_TOKEN"
        } else if let user, let password {
            authorization = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
            credentialSource = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        } else if user != nil || password != nil {
            let (given, missing) = user != nil ? ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD") : ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME")
            throw TrackingError(.invalidSetup, "\(given) is set but \(missing) is not: set both for MLflow's basic authentication, or MLFLOW_TRACKING_TOKEN for a bearer token")
        } else {
            authorization = nil
            credentialSource = nil
        }
    }

    /// The run's page in MLflow's UI.
    public func runURL(experimentID: String, runID: String) -> String {
        "\(displayURI)/#/experiments/\(experimentID)/runs/\(runID)"
    }
}
