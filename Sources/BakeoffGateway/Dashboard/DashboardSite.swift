import BakeoffCore
import BakeoffHTTP
import BakeoffReport
import BakeoffStore
import Dispatch
import Foundation
import Synchronization

/// Who may see the dashboard: a session cookie signed with the admin key (HMAC-SHA256), set by the sign-in
/// form, so the key never travels in a URL and scripts cannot read it (HttpOnly, SameSite=Strict).
///
/// Stateless: any gateway holding the same key accepts the cookie, and a restart keeps people signed in.
/// Without a key (`bakeoff dashboard` on this machine only) every request may look.
package struct DashboardSession: Sendable {
    package static let cookieName = "bakeoff_dashboard"
    /// The admin key, or nil when the dashboard is open.
    let key: [UInt8]?
    /// Seconds a sign-in lasts.
    let lifetime: Int64

    package init(adminKey: String?, lifetimeSeconds: Int64 = 12 * 3600) {
        key = adminKey.map { Array($0.utf8) }
        lifetime = lifetimeSeconds
    }

    package var isOpen: Bool { key == nil }

    /// Whether `given` is the admin key (constant time).
    package func isAdminKey(_ given: String) -> Bool {
        guard let key else { return false }
        return constantTimeEqual(Array(given.utf8), key)
    }

    /// The cookie's value for a sign-in at `now` (seconds since 1970): `bd1.<expiry>.<signature>`.
    package func token(now: Int64) -> String {
        let expiry = now + lifetime
        return "bd1.\(expiry).\(FeedbackTokenSigner.base64URL(signature(expiry)))"
    }

    /// The `Set-Cookie` header value that signs in, or (with nil) signs out.
    package func setCookie(_ token: String?) -> String {
        guard let token else { return "\(Self.cookieName)=; Path=\(DashboardPages.root); HttpOnly; SameSite=Strict; Max-Age=0" }
        return "\(Self.cookieName)=\(token); Path=\(DashboardPages.root); HttpOnly; SameSite=Strict; Max-Age=\(lifetime)"
    }

    /// Whether the request may see the dashboard at `now`: an open dashboard, a valid cookie, or the admin key
    /// as a bearer token (for scripts).
    package func allows(_ request: HTTPRequest, now: Int64) -> Bool {
        guard key != nil else { return true }
        if let auth = request.header("authorization"), auth.hasPrefix("Bearer "), isAdminKey(String(auth.dropFirst(7))) { return true }
        guard let token = Self.cookie(in: request) else { return false }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "bd1", let expiry = Int64(parts[1]), expiry > now,
              let given = FeedbackTokenSigner.decodeBase64URL(parts[2]) else { return false }
        return constantTimeEqual(given, signature(expiry))
    }

    private func signature(_ expiry: Int64) -> [UInt8] {
        hmacSHA256(key: key ?? [], message: Array("bakeoff-dashboard\n\(expiry)".utf8))
    }

    /// The dashboard cookie's value among the request's cookies.
    static func cookie(in request: HTTPRequest) -> String? {
        for header in request.headers where header.name == "cookie" {
            for pair in header.value.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                if trimmed.hasPrefix(cookieName + "=") { return String(trimmed.dropFirst(cookieName.count + 1)) }
            }
        }
        return nil
    }
}

/// What a request under `/dashboard` asks for.
package enum DashboardRoute: Equatable, Sendable {
    case experiments
    case experiment(String)
    /// `/dashboard/evals/K-ID`: report ID of the K-th eval cache.
    case eval(source: Int, id: Int64)
    case script
    case signIn
    case signOut
    case notFound
    case methodNotAllowed

    /// The route of a path under `/dashboard` (nil for other paths).
    package static func route(method: String, path: String) -> DashboardRoute? {
        // HEAD is GET without the body (the server sends no body for it).
        let method = method == "HEAD" ? "GET" : method
        let root = DashboardPages.root
        guard path == root || path.hasPrefix(root + "/") else { return nil }
        let rest = String(path.dropFirst(root.count))
        switch rest {
        case "", "/": return method == "GET" ? .experiments : .methodNotAllowed
        case "/app.js": return method == "GET" ? .script : .methodNotAllowed
        case "/sign-in": return method == "POST" ? .signIn : method == "GET" ? .experiments : .methodNotAllowed
        case "/sign-out": return method == "POST" ? .signOut : .methodNotAllowed
        default:
            if rest.hasPrefix("/evals/") {
                let parts = rest.dropFirst("/evals/".count).split(separator: "-", omittingEmptySubsequences: false)
                guard parts.count == 2, let source = Int(parts[0]), let id = Int64(parts[1]), source >= 0 else { return .notFound }
                return method == "GET" ? .eval(source: source, id: id) : .methodNotAllowed
            }
            if rest.hasPrefix("/experiments/") {
                // The server has decoded the path once already: the rest is the name, "/" and "%" included.
                let name = String(rest.dropFirst("/experiments/".count))
                guard !name.isEmpty else { return .notFound }
                return method == "GET" ? .experiment(name) : .methodNotAllowed
            }
            return .notFound
        }
    }
}

/// The dashboard's pages, served by the gateway at `/dashboard` and by `bakeoff dashboard`: the experiments,
/// each experiment's page, sign-in and sign-out. Data comes from each experiment's `LiveAnalysis`, so a
/// refresh reads only the events written since the last one.
public final class DashboardSite: Sendable {
    /// One experiment the dashboard shows.
    public struct Experiment: Sendable {
        public var name: String
        public var model: String?
        /// The experiment's live analysis (made on first use; it throws when the plan cannot be read).
        public var analysis: @Sendable () throws -> LiveAnalysis
        public init(name: String, model: String?, analysis: @escaping @Sendable () throws -> LiveAnalysis) {
            self.name = name
            self.model = model
            self.analysis = analysis
        }
    }

    /// The experiments now (a store being written may gain some).
    let experiments: @Sendable () -> [Experiment]
    /// Eval caches whose kept reports the dashboard lists.
    let evalCaches: [String]
    let session: DashboardSession
    /// Why the dashboard is off (the gateway has no admin key), or nil.
    let disabled: String?
    let readOnly: Bool
    let refreshSeconds: Int
    /// Runs before the store is read (the gateway writes out what it holds).
    let beforeRead: @Sendable () -> Void
    /// The store's write problems now (the gateway's; none read-only).
    let storeProblems: @Sendable () -> [String]
    let now: @Sendable () -> Int64
    /// Called with an experiment's name when its page is read: the gateway records the read as a look.
    let recordLook: (@Sendable (String) -> Void)?

    /// - Parameters:
    ///   - adminKey: nil opens the dashboard to every request (only for a server on this machine).
    /// Hosts the `Host` header may name (any port) when the dashboard is open without a key: a page of another
    /// site that resolves its name to this machine (DNS rebinding) gets nothing. Nil: any.
    let allowedHosts: Set<String>?
    /// Wrong keys in the last minute, to refuse guessing in bulk.
    /// Times of wrong keys in the last minute, per client address ("" when unknown).
    private let wrongKeys = Mutex<[String: [Int64]]>([:])

    public convenience init(experiments: [Experiment], evalCaches: [String] = [], adminKey: String?, disabled: String? = nil,
                            readOnly: Bool, refreshSeconds: Int = 30, allowedHosts: Set<String>? = nil,
                            beforeRead: @escaping @Sendable () -> Void = {}, storeProblems: @escaping @Sendable () -> [String] = { [] },
                            now: (@Sendable () -> Int64)? = nil, recordLook: (@Sendable (String) -> Void)? = nil) {
        self.init(listing: { experiments }, evalCaches: evalCaches, adminKey: adminKey, disabled: disabled, readOnly: readOnly,
                  refreshSeconds: refreshSeconds, allowedHosts: allowedHosts, beforeRead: beforeRead, storeProblems: storeProblems, now: now,
                  recordLook: recordLook)
    }

    /// `listing` gives the experiments at each request.
    public init(listing: @escaping @Sendable () -> [Experiment], evalCaches: [String] = [], adminKey: String?, disabled: String? = nil,
                readOnly: Bool, refreshSeconds: Int = 30, allowedHosts: Set<String>? = nil,
                beforeRead: @escaping @Sendable () -> Void = {}, storeProblems: @escaping @Sendable () -> [String] = { [] },
                now: (@Sendable () -> Int64)? = nil, recordLook: (@Sendable (String) -> Void)? = nil) {
        experiments = listing
        self.recordLook = recordLook
        self.allowedHosts = allowedHosts
        self.evalCaches = evalCaches
        session = DashboardSession(adminKey: adminKey)
        self.disabled = disabled
        self.readOnly = readOnly
        self.refreshSeconds = refreshSeconds
        self.beforeRead = beforeRead
        self.storeProblems = storeProblems
        self.now = now ?? { SystemClock().wallMicroseconds() }
    }

    /// Whether `path` is the dashboard's.
    public static func owns(_ path: String) -> Bool { DashboardRoute.route(method: "GET", path: path) != nil }

    /// Answers a request for a dashboard path.
    public func handle(_ exchange: any HTTPExchanging, _ request: HTTPRequest) {
        guard let route = DashboardRoute.route(method: request.method, path: request.path) else {
            return respond(exchange, 404, DashboardPages.message(title: "Not found", text: "There is no page here.", signedIn: false))
        }
        if let disabled {
            return respond(exchange, 403, DashboardPages.message(title: "The dashboard is off", text: disabled, signedIn: false))
        }
        if let allowedHosts, !allowedHosts.contains(Self.hostName(request.header("host") ?? "")) {
            return respond(exchange, 403, DashboardPages.message(title: "Wrong host", text: "This dashboard answers only to \(allowedHosts.sorted().joined(separator: ", ")) (it has no key, so it serves this machine only).", signedIn: false))
        }
        let seconds = now() / 1_000_000
        switch route {
        case .script:
            return exchange.respond(status: 200, headers: Self.securityHeaders + [("Content-Type", "text/javascript; charset=utf-8")],
                                    body: Array(DashboardPages.script.utf8))
        case .methodNotAllowed:
            let allow = request.path.hasSuffix("/sign-in") ? "GET, HEAD, POST" : request.path.hasSuffix("/sign-out") ? "POST" : "GET, HEAD"
            return respond(exchange, 405, DashboardPages.message(title: "Method not allowed", text: "\(request.method) is not allowed on \(request.path).", signedIn: false),
                           extra: [("Allow", allow)])
        case .signIn:
            let form = Self.formFields(request.body)
            let next = form["next"].flatMap(Self.safeNext) ?? DashboardPages.root
            if session.isOpen {
                return redirect(exchange, to: next, cookie: nil)
            }
            // Each try counts as a wrong one until the key proves right (so tries at once cannot pass the limit).
            let client = Self.limitKey(request.remoteAddress)
            guard countTry(from: client, now: seconds) else {
                return respond(exchange, 429, DashboardPages.signIn(error: "Too many wrong keys in the last minute: wait a minute and try again.", next: next),
                               extra: [("Retry-After", "60")])
            }
            guard let key = form["key"], session.isAdminKey(key) else {
                // A wrong key is answered half a second later (off the server's threads), so guessing is slow.
                let page = DashboardPages.signIn(error: "That is not the admin key.", next: next)
                DispatchQueue.global().asyncAfter(deadline: .now() + Self.wrongKeyDelay) { [self] in respond(exchange, 401, page) }
                return
            }
            wrongKeys.withLock { all in
                all[client]?.removeLast()
                if all[client]?.isEmpty == true { all[client] = nil }
            }
            return redirect(exchange, to: next, cookie: session.setCookie(session.token(now: seconds)))
        case .signOut:
            return redirect(exchange, to: DashboardPages.root, cookie: session.setCookie(nil))
        case .notFound:
            guard session.allows(request, now: seconds) else { return refuse(exchange, request) }
            return respond(exchange, 404, DashboardPages.message(title: "Not found", text: "There is no dashboard page at \(request.path).", signedIn: true))
        case .eval(let source, let id):
            guard session.allows(request, now: seconds) else { return refuse(exchange, request) }
            guard source < evalCaches.count, let saved = try? EvalCache.savedReports(path: evalCaches[source], id: id).first else {
                return respond(exchange, 404, DashboardPages.message(title: "No such eval", text: "There is no kept eval report at \(request.path): the experiments page lists the ones kept.", signedIn: true))
            }
            return respond(exchange, 200, DashboardPages.evalPage(saved.html))
        case .experiments, .experiment:
            guard session.allows(request, now: seconds) else { return refuse(exchange, request) }
            let fragment = request.header("x-bakeoff-fragment") == "1"
            // Reading the store may take a while the first time: off the server's threads.
            DispatchQueue.global().async { [self] in
                beforeRead()
                if case .experiment(let name) = route {
                    let all = experiments()
                    guard let experiment = all.first(where: { $0.name == name }) else {
                        return respond(exchange, 404, DashboardPages.message(title: "No such experiment", text: "No experiment \"\(name)\" here (experiments: \(all.map(\.name).joined(separator: ", "))).", signedIn: true))
                    }
                    recordLook?(experiment.name)
                    let view = read(experiment)
                    respond(exchange, 200, fragment ? DashboardPages.experimentMain(view) : DashboardPages.experiment(view, refreshSeconds: refreshSeconds, open: session.isOpen))
                } else {
                    let views = experiments().map(read)
                    let evals = keptEvals()
                    respond(exchange, 200, fragment ? DashboardPages.experimentsMain(views, evals: evals, readOnly: readOnly)
                                                    : DashboardPages.experiments(views, evals: evals, readOnly: readOnly, refreshSeconds: refreshSeconds, open: session.isOpen))
                }
            }
        }
    }

    /// The eval reports kept in the caches, newest first (a cache that cannot be read is skipped and said).
    func keptEvals() -> [DashboardEval] {
        var out: [DashboardEval] = []
        for (k, path) in evalCaches.enumerated() {
            do {
                for r in try EvalCache.savedReports(path: path) {
                    out.append(DashboardEval(experiment: r.experiment, summary: r.summary, createdAt: r.createdAt, path: "\(DashboardPages.root)/evals/\(k)-\(r.id)"))
                }
            } catch {
                out.append(DashboardEval(experiment: path, summary: "cannot be read: \(error)", createdAt: 0, path: DashboardPages.root))
            }
        }
        return out.sorted { $0.createdAt > $1.createdAt }
    }

    /// One experiment's data as of now, or why there is none.
    func read(_ experiment: Experiment) -> DashboardExperiment {
        let at = now()
        do {
            let s = try experiment.analysis().current(now: now)
            var view = DashboardExperiment(name: experiment.name, model: experiment.model, report: s.report, series: s.series,
                                           daily: s.daily, storeProblems: storeProblems() + (s.readError.map { ["the last read failed: \($0)"] } ?? []),
                                           readAt: s.readAt)
            view.updating = s.updating
            view.readOnly = readOnly
            return view
        } catch {
            var view = DashboardExperiment(name: experiment.name, model: experiment.model, unavailable: "\(error)",
                                           storeProblems: storeProblems(), readAt: at)
            view.readOnly = readOnly
            return view
        }
    }

    /// Not signed in: the sign-in form (200 at the dashboard's root, 401 elsewhere, so no data shows).
    private func refuse(_ exchange: any HTTPExchanging, _ request: HTTPRequest) {
        let atRoot = request.path == DashboardPages.root || request.path == DashboardPages.root + "/"
        // A refresh (the fragment) of a page whose session ended gets 401, so the page reloads into the form.
        let refresh = request.header("x-bakeoff-fragment") == "1"
        respond(exchange, atRoot && !refresh ? 200 : 401, DashboardPages.signIn(next: atRoot ? nil : request.path))
    }

    private func respond(_ exchange: any HTTPExchanging, _ status: Int, _ html: String, extra: [(String, String)] = []) {
        exchange.respond(status: status, headers: Self.securityHeaders + [("Content-Type", "text/html; charset=utf-8")] + extra,
                         body: Array(html.utf8))
    }

    private func redirect(_ exchange: any HTTPExchanging, to location: String, cookie: String?) {
        var headers = Self.securityHeaders + [("Location", location), ("Content-Type", "text/plain; charset=utf-8")]
        if let cookie { headers.append(("Set-Cookie", cookie)) }
        exchange.respond(status: 303, headers: headers, body: Array("See \(location)\n".utf8))
    }

    /// How long a wrong sign-in waits for its answer.
    static let wrongKeyDelay = 0.5
    /// Wrong keys accepted from one address in a minute before its sign-ins are refused for the rest of it
    /// (others still sign in: a guesser does not lock the admin out).
    package static let wrongKeysPerMinute = 30
    /// Wrong keys accepted from all addresses together in a minute (many guessers at once); past it, an address
    /// that has guessed wrong is refused, one that has not still signs in.
    package static let wrongKeysPerMinuteFromAll = 300

    /// Whom wrong keys are counted against: an IPv4 address, or an IPv6 address's /64 (one host can hold a whole
    /// /64); "" when unknown. Behind a reverse proxy every visitor is the proxy: the limit is then the proxy's.
    package static func limitKey(_ address: String?) -> String {
        guard let address else { return "" }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard address.contains(":"), inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        // An IPv4 address written as IPv6 (::ffff:a.b.c.d) is that IPv4 address.
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return bytes[12...].map(String.init).joined(separator: ".")
        }
        return bytes[0..<8].map { String($0, radix: 16) }.joined(separator: ":") + "::/64"
    }

    /// Counts a sign-in try from `client` as a wrong key, unless the limits are reached (then false).
    private func countTry(from client: String, now: Int64) -> Bool {
        wrongKeys.withLock { all in
            var total = 0
            for (address, times) in all {
                let recent = times.filter { $0 > now - 60 }
                all[address] = recent.isEmpty ? nil : recent
                total += recent.count
            }
            // The shared cap stops addresses that have guessed wrong already, never one that has not (the admin).
            let mine = all[client]?.count ?? 0
            guard mine < Self.wrongKeysPerMinute, mine == 0 || total < Self.wrongKeysPerMinuteFromAll else { return false }
            all[client, default: []].append(now)
            return true
        }
    }

    /// Where a sign-in may send the visitor next: a dashboard path of this server, nothing else.
    package static func safeNext(_ next: String) -> String? {
        guard next.hasPrefix(DashboardPages.root + "/") || next == DashboardPages.root,
              !next.contains("//"), !next.contains("\\"),
              !next.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return nil }
        return next
    }

    /// The name in a `Host` header, without its port.
    package static func hostName(_ host: String) -> String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") { return String(host[...close]).lowercased() }
        return String(host.split(separator: ":", maxSplits: 1).first ?? "").lowercased()
    }

    /// Every dashboard response: nothing loads from elsewhere, no framing, no caching of data, no referrer.
    static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    ]

    /// The fields of an `application/x-www-form-urlencoded` body.
    package static func formFields(_ body: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: UInt8(ascii: "&")) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]) else { continue }
            fields[name] = parts.count > 1 ? decode(parts[1]) ?? "" : ""
        }
        return fields
    }

    /// A form field's name or value: `+` is a space, then percent-decoding (nil when it is not UTF-8).
    private static func decode(_ bytes: ArraySlice<UInt8>) -> String? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        return text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
