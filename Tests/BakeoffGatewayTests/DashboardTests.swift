import BakeoffCore
import BakeoffGateway
import BakeoffHTTP
import BakeoffReport
import BakeoffStore
import BakeoffTestSupport
import Foundation
import Synchronization
import Testing

/// The dashboard's sign-in: a signed cookie, never the key itself; expired, forged or foreign cookies see nothing.
@Suite("Dashboard session")
struct DashboardSessionTests {
    let session = DashboardSession(adminKey: "the-admin-key", lifetimeSeconds: 3600)

    func request(cookie: String? = nil, bearer: String? = nil) -> HTTPRequest {
        var headers: [(name: String, value: String)] = []
        if let cookie { headers.append(("cookie", cookie)) }
        if let bearer { headers.append(("authorization", "Bearer " + bearer)) }
        return HTTPRequest(method: "GET", path: "/dashboard", headers: headers)
    }

    @Test func aSignedCookieLetsInUntilItExpires() {
        let token = session.token(now: 1_000)
        #expect(!token.contains("the-admin-key"))
        #expect(session.allows(request(cookie: "a=b; \(DashboardSession.cookieName)=\(token); c=d"), now: 1_000))
        #expect(session.allows(request(cookie: "\(DashboardSession.cookieName)=\(token)"), now: 4_599))
        #expect(!session.allows(request(cookie: "\(DashboardSession.cookieName)=\(token)"), now: 4_600))
    }

    @Test(arguments: ["", "bd1", "bd1.99999999999.AAAA", "bd1.abc.def", "the-admin-key", "bd2.4600.xyz"])
    func forgedCookiesAreRefused(value: String) {
        #expect(!session.allows(request(cookie: "\(DashboardSession.cookieName)=\(value)"), now: 1_000))
    }

    @Test func aCookieSignedWithAnotherKeyIsRefused() {
        let other = DashboardSession(adminKey: "another-key").token(now: 1_000)
        #expect(!session.allows(request(cookie: "\(DashboardSession.cookieName)=\(other)"), now: 1_000))
        // Changing the expiry breaks the signature.
        let token = session.token(now: 1_000)
        let parts = token.split(separator: ".")
        let stretched = "bd1.\(Int64(parts[1])! + 100_000).\(parts[2])"
        #expect(!session.allows(request(cookie: "\(DashboardSession.cookieName)=\(stretched)"), now: 1_000))
    }

    @Test func theCookieIsHttpOnlyAndSameSiteStrict() {
        let set = session.setCookie(session.token(now: 0))
        #expect(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/dashboard"))
        #expect(session.setCookie(nil).contains("Max-Age=0"))
    }

    @Test func theAdminKeyAsBearerTokenWorksForScripts() {
        #expect(session.allows(request(bearer: "the-admin-key"), now: 0))
        #expect(!session.allows(request(bearer: "the-admin-kez"), now: 0))
        #expect(!session.allows(request(), now: 0))
    }
}

@Suite("Dashboard routes")
struct DashboardRouteTests {
    @Test func signInSendsOnlyToThisDashboard() {
        #expect(DashboardSite.safeNext("/dashboard/experiments/e") == "/dashboard/experiments/e")
        for bad in ["//evil.example", "/dashboard//evil", "https://evil.example/dashboard", "/dashboard\\evil", "/dashboardx",
                    "/dashboard/x\r\nSet-Cookie: a=b", "/v1/models"] {
            #expect(DashboardSite.safeNext(bad) == nil, "\(bad)")
        }
        #expect(DashboardSite.hostName("127.0.0.1:8090") == "127.0.0.1" && DashboardSite.hostName("[::1]:80") == "[::1]"
                && DashboardSite.hostName("LocalHost") == "localhost")
    }

    @Test func signInFormFields() {
        #expect(DashboardSite.formFields(Array("key=a%2Bb+c%26d&next=%2Fdashboard".utf8)) == ["key": "a+b c&d", "next": "/dashboard"])
        #expect(DashboardSite.formFields(Array("key=%E2%9C%93&empty=&bare".utf8)) == ["key": "✓", "empty": "", "bare": ""])
        // Broken percent-encoding or bytes that are not UTF-8: the field is dropped or empty, never a crash.
        #expect(DashboardSite.formFields(Array("key=%ZZ".utf8))["key"] == "")
        #expect(DashboardSite.formFields([0x6B, 0x3D, 0xFF, 0xFE])["k"] == "")
        #expect(DashboardSite.formFields([]).isEmpty)
    }

    @Test func routes() {
        #expect(DashboardRoute.route(method: "GET", path: "/dashboard") == .experiments)
        #expect(DashboardRoute.route(method: "GET", path: "/dashboard/") == .experiments)
        #expect(DashboardRoute.route(method: "POST", path: "/dashboard/sign-in") == .signIn)
        #expect(DashboardRoute.route(method: "DELETE", path: "/dashboard") == .methodNotAllowed)
        // The server decoded the path already: a name keeps its "/" and "%".
        #expect(DashboardRoute.route(method: "GET", path: "/dashboard/experiments/a/b") == .experiment("a/b"))
        #expect(DashboardRoute.route(method: "GET", path: "/dashboard/experiments/pct%41") == .experiment("pct%41"))
        #expect(DashboardRoute.route(method: "HEAD", path: "/dashboard") == .experiments)
        #expect(DashboardRoute.route(method: "GET", path: "/dashboard/evals/0-12") == .eval(source: 0, id: 12))
        #expect(DashboardRoute.route(method: "GET", path: "/dashboard/evals/x-12") == .notFound)
        #expect(DashboardRoute.route(method: "GET", path: "/dashboard/evals/-1-2") == .notFound)
        #expect(DashboardRoute.route(method: "GET", path: "/dashboardx") == nil)
        #expect(DashboardRoute.route(method: "GET", path: "/v1/models") == nil)
    }
}

/// The site in process, on a store of real events: what each visitor gets.
@Suite("Dashboard pages served")
struct DashboardSiteTests {
    static func store() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("store.db").path
        let store = try EventStore(path: path, options: StoreOptions(flushIntervalMs: 10))
        for d in 0..<3 {
            for u in 0..<40 {
                let t = Make.t0 + Int64(d) * Make.day + Int64(u) * 60_000_000
                let id = "r\(d)-\(u)"
                store.append(Make.request("u\(u)", u % 2 == 0 ? "control" : "treatment", id, conversation: "c\(d)-\(u)", at: t, latency: Double(100 + u)))
                store.append(Make.feedback("thumbs_up", Double(u % 3 == 0 ? 1 : 0), request: id, at: t + 1_000_000))
            }
        }
        store.close()
        return path
    }

    static func site(_ path: String, key: String? = "k3y", disabled: String? = nil) -> DashboardSite {
        var options = EventLog.Options()
        options.experiment = "e"
        var plan = AnalysisPlan()
        plan.method = .sequential
        let analysis = LiveAnalysis(path: path, options: options, plan: plan)
        return DashboardSite(experiments: [DashboardSite.Experiment(name: "e", model: "bot") { analysis }], adminKey: key,
                             disabled: disabled, readOnly: true, now: { Make.t0 + 3 * Make.day + 3_600_000_000 })
    }

    func get(_ site: DashboardSite, _ path: String, headers: [(String, String)] = []) throws -> FakeExchange.Answer {
        let exchange = FakeExchange(method: "GET", path: path, headers: headers)
        site.handle(exchange, exchange.request)
        return try #require(exchange.wait(seconds: 60))
    }

    @Test func signInThenSeeTheExperiment() throws {
        let site = Self.site(try Self.store())
        // Not signed in: the form, no data.
        let anonymous = try get(site, "/dashboard/experiments/e")
        #expect(anonymous.status == 401 && anonymous.text.contains("name=\"key\"") && !anonymous.text.contains("data-metric"))
        // A wrong key.
        let wrong = FakeExchange(method: "POST", path: "/dashboard/sign-in", body: Array("key=nope&next=%2Fdashboard%2Fexperiments%2Fe".utf8))
        site.handle(wrong, wrong.request)
        let refused = try #require(wrong.wait())
        #expect(refused.status == 401 && refused.header("set-cookie") == nil && refused.text.contains("class=\"error\""))
        // The right key: a cookie and a redirect to where the visitor was going.
        let right = FakeExchange(method: "POST", path: "/dashboard/sign-in", body: Array("key=k3y&next=%2Fdashboard%2Fexperiments%2Fe".utf8))
        site.handle(right, right.request)
        let ok = try #require(right.wait())
        #expect(ok.status == 303 && ok.header("location") == "/dashboard/experiments/e")
        let cookie = try #require(ok.header("set-cookie")?.split(separator: ";").first.map(String.init))
        // A redirect elsewhere is not followed.
        let away = FakeExchange(method: "POST", path: "/dashboard/sign-in", body: Array("key=k3y&next=https%3A%2F%2Fevil.example".utf8))
        site.handle(away, away.request)
        #expect(try #require(away.wait()).header("location") == "/dashboard")

        let page = try get(site, "/dashboard/experiments/e", headers: [("Cookie", cookie)])
        #expect(page.status == 200)
        #expect(page.text.contains("table class=\"scorecard\"") && page.text.contains("data-metric=\"thumbs_up_rate\""))
        #expect(page.header("content-security-policy")?.contains("default-src 'none'") == true)
        #expect(!page.text.contains("http://") && !page.text.contains("https://"), "nothing loads from elsewhere")
        // The refresh gets <main>'s content only.
        let fragment = try get(site, "/dashboard/experiments/e", headers: [("Cookie", cookie), ("X-Bakeoff-Fragment", "1")])
        #expect(fragment.status == 200 && !fragment.text.contains("<html") && fragment.text.contains("scorecard"))
        let list = try get(site, "/dashboard", headers: [("Cookie", cookie)])
        #expect(list.status == 200 && list.text.contains("data-experiment=\"e\""))
        #expect(try get(site, "/dashboard/experiments/nope", headers: [("Cookie", cookie)]).status == 404)
    }

    @Test func aGroupSequentialPlanShowsItsLookAndBoundaryAndEachReadIsALook() throws {
        let path = try Self.store()
        var options = EventLog.Options()
        options.experiment = "e"
        var plan = AnalysisPlan()
        plan.method = .auto
        plan.maximumRuntimeDays = 14
        plan.primaryMetric = "thumbs_up_rate"  // the store's only feedback
        let analysis = LiveAnalysis(path: path, options: options, plan: plan)
        let reads = Mutex<[String]>([])
        let site = DashboardSite(experiments: [DashboardSite.Experiment(name: "e", model: "bot") { analysis }], adminKey: nil,
                                 readOnly: true, now: { Make.t0 + 3 * Make.day + 3_600_000_000 },
                                 recordLook: { name in reads.withLock { $0.append(name) } })
        let page = try get(site, "/dashboard/experiments/e")
        #expect(page.status == 200)
        #expect(page.text.contains("data-method=\"group-sequential\""), "the page says which method")
        #expect(page.text.contains("the plan has a horizon (14 planned days)"))
        #expect(page.text.contains("class=\"boundary\""), "the z-against-boundary chart")
        // The lift chart's boundary: ± boundary × SE over the control mean, each day (drawn once the lift is).
        let snapshot = try analysis.current(now: { Make.t0 + 3 * Make.day + 3_600_000_000 })
        let series = snapshot.series
        let (upper, lower) = DashboardPages.liftBoundary(series, primary: "thumbs_up_rate", treatment: "treatment")
        #expect(upper.count == series.points.count && upper.contains { $0.y != nil })
        for (point, (u, l)) in zip(series.points, zip(upper, lower)) {
            guard let y = u.y, let r = point.report.results.first(where: { $0.metric.name == "thumbs_up_rate" }),
                  let se = r.standardError, let mean = r.control.mean, let m = point.report.plan.monitoring else { continue }
            #expect(abs(y - m.boundary(alpha: r.intervalAlpha) * se / abs(mean) * 100) < 1e-9)
            #expect(l.y == -y)
        }
        _ = try get(site, "/dashboard")
        _ = try get(site, "/dashboard/experiments/nope")
        #expect(reads.withLock { $0 } == ["e"], "only an experiment's page is a look at it")
    }

    @Test func offWithoutAnAdminKey() throws {
        let site = Self.site(try Self.store(), key: "k3y", disabled: "Admin features are off")
        #expect(try get(site, "/dashboard").status == 403)
        let post = FakeExchange(method: "POST", path: "/dashboard/sign-in", body: Array("key=k3y".utf8))
        site.handle(post, post.request)
        #expect(try #require(post.wait()).status == 403)
    }

    @Test func keptEvalReportsAreListedAndShownToSignedInVisitorsOnly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evals-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let cache = dir.appendingPathComponent("bakeoff-eval.db").path
        _ = try EvalCache(path: cache)
        try EvalCache.saveReport(path: cache, experiment: "e", createdAt: Make.t0, summary: "Promote: treatment — wins 62% [55%, 68%]",
                                 json: "{}", html: "<!doctype html><html><body><h1>Offline eval: e</h1><p>win rate 62%</p></body></html>")
        var options = EventLog.Options()
        options.experiment = "e"
        let analysis = LiveAnalysis(path: try Self.store(), options: options, plan: AnalysisPlan())
        let site = DashboardSite(experiments: [DashboardSite.Experiment(name: "e", model: nil) { analysis }], evalCaches: [cache],
                                 adminKey: "k3y", readOnly: true)
        let auth = [("Authorization", "Bearer k3y")]
        let list = try get(site, "/dashboard", headers: auth)
        #expect(list.text.contains("Offline evals") && list.text.contains("/dashboard/evals/0-1") && list.text.contains("wins 62%"))
        let page = try get(site, "/dashboard/evals/0-1", headers: auth)
        #expect(page.status == 200 && page.text.contains("win rate 62%") && page.text.contains("href=\"/dashboard\""))
        #expect(try get(site, "/dashboard/evals/0-1").status == 401)
        #expect(try get(site, "/dashboard/evals/0-2", headers: auth).status == 404)
        #expect(try get(site, "/dashboard/evals/5-1", headers: auth).status == 404)
    }

    /// A slow store's page answers at once with the last read, marked, while a newer read runs; with nothing
    /// written since, the last read is current.
    @Test func aSlowReadIsServedFromTheLastOneWhileTheNextRuns() throws {
        let path = try Self.store()
        var options = EventLog.Options()
        options.experiment = "e"
        let live = LiveAnalysis(path: path, options: options, plan: AnalysisPlan())
        let now: @Sendable () -> Int64 = { Make.t0 + 4 * Make.day }
        let first = try live.current(now: now, budget: 0)
        #expect(!first.updating && first.report.requestEvents == 120)
        #expect(try !live.current(now: now, budget: 0).updating, "nothing new: the last read is current")
        let store = try EventStore(path: path, options: StoreOptions(flushIntervalMs: 10))
        store.append(Make.request("new-user", "control", "r-new", at: Make.t0 + 3 * Make.day + 10_000_000))
        store.close()
        let stale = try live.current(now: now, budget: 0)
        #expect(stale.updating && stale.report.requestEvents == 120)
        var fresh = stale
        for _ in 0..<200 where fresh.report.requestEvents == 120 {
            Thread.sleep(forTimeInterval: 0.05)
            fresh = try live.current(now: now, budget: 0)
        }
        #expect(fresh.report.requestEvents == 121 && !fresh.updating)
    }

    /// Open (no key) only for this machine's names: another site's page that resolves to it gets nothing.
    @Test func anOpenDashboardAnswersOnlyToLocalHostNames() throws {
        var options = EventLog.Options()
        options.experiment = "e"
        let analysis = LiveAnalysis(path: try Self.store(), options: options, plan: AnalysisPlan())
        let site = DashboardSite(experiments: [DashboardSite.Experiment(name: "e", model: nil) { analysis }], adminKey: nil, readOnly: true,
                                 allowedHosts: ["127.0.0.1", "[::1]", "localhost"])
        #expect(try get(site, "/dashboard/experiments/e", headers: [("Host", "attacker.example:8090")]).status == 403)
        let page = try get(site, "/dashboard/experiments/e", headers: [("Host", "127.0.0.1:8090")])
        #expect(page.status == 200 && !page.text.contains("Sign out"))
    }

    /// A refresh whose session ended gets 401 even at the root, so the page reloads into the form instead of
    /// nesting the form in itself.
    @Test func anEndedSessionsRefreshIsRefused() throws {
        let site = Self.site(try Self.store())
        #expect(try get(site, "/dashboard").status == 200)
        #expect(try get(site, "/dashboard", headers: [("X-Bakeoff-Fragment", "1")]).status == 401)
    }

    /// Wrong keys are answered late, and past 30 a minute from one address, sign-in is refused there for the rest
    /// of it (requests without an address share one; another address is still let in: e2e/browser).
    @Test func guessingInBulkIsRefused() throws {
        let site = Self.site(try Self.store())
        let tries = (0..<(DashboardSite.wrongKeysPerMinute + 3)).map { i in
            FakeExchange(method: "POST", path: "/dashboard/sign-in", body: Array("key=guess-\(i)".utf8))
        }
        for t in tries { site.handle(t, t.request) }
        let statuses = try tries.map { try #require($0.wait()).status }
        #expect(statuses.filter { $0 == 401 }.count == DashboardSite.wrongKeysPerMinute)
        #expect(statuses.filter { $0 == 429 }.count == 3)
        let right = FakeExchange(method: "POST", path: "/dashboard/sign-in", body: Array("key=k3y".utf8))
        site.handle(right, right.request)
        #expect(try #require(right.wait()).status == 429)
    }

    /// Wrong keys count against an IPv4 address, or an IPv6 address's /64 (one host may hold all of it).
    @Test func wrongKeysCountPerAddressOrIPv6Slash64() {
        #expect(DashboardSite.limitKey("192.0.2.7") == "192.0.2.7")
        #expect(DashboardSite.limitKey("2001:db8:1:2::1") == DashboardSite.limitKey("2001:db8:1:2:ffff:eeee:dddd:1"))
        #expect(DashboardSite.limitKey("2001:db8:1:2::1") != DashboardSite.limitKey("2001:db8:1:3::1"))
        #expect(DashboardSite.limitKey("::ffff:192.0.2.7") == "192.0.2.7")
        #expect(DashboardSite.limitKey(nil) == "")
    }

    @Test func theScriptIsServedFromHere() throws {
        let script = try get(Self.site(try Self.store()), "/dashboard/app.js")
        #expect(script.status == 200 && script.header("content-type")?.hasPrefix("text/javascript") == true)
        #expect(!script.text.contains("http://") && !script.text.contains("https://"))
    }
}
