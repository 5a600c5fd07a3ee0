import BakeoffCore
import BakeoffEval
import BakeoffGateway
import BakeoffHTTP
import BakeoffStore
import Dispatch
import Foundation
import Synchronization

/// How far a run is: calls done (answered, failed for good, or found in the cache) of those known so far.
public struct EvalProgress: Sendable, Equatable {
    public var done: Int
    /// Calls known so far: every answer, and the judge calls of answers already in (an estimate until then).
    public var total: Int
    public var cached: Int
    public var retries: Int
    public var failed: Int
}

/// What a run did besides its observations.
public struct EvalRunStats: Sendable, Equatable {
    /// Calls made to variants and the judge (retries included).
    public var calls = 0
    public var retries = 0
    /// Answers and verdicts taken from the cache instead of calling.
    public var cachedAnswers = 0
    public var cachedJudgments = 0
    /// Calls that failed for good (after their retries).
    public var failedAnswers = 0
    public var failedJudgments = 0
    /// Judge answers without a verdict.
    public var unparseableJudgments = 0
    /// Stopped before the end (an interrupt): what is missing is called next time.
    public var stopped = false
    /// Why the cache could not be read or written, if it could not (the run goes on; what was not kept is
    /// called again next time).
    public var cacheError: String?
    public var seconds = 0.0
}

/// Runs an offline eval: every request of the dataset to every variant of the experiment (each `repetitions`
/// times), then the judge on the answers, through the gateway's own upstream path (`ProxyDecision.upstreamRequest`
/// rewrites the request for the variant, `UpstreamReply` measures and reads the answer), so what is tested
/// offline is what goes live.
///
/// Calls run concurrently, at most `plan.concurrency` per upstream; one that fails with 429, 5xx, a timeout
/// or no connection is tried again up to `plan.retries` times, after what `retry-after` asks or an
/// exponential backoff. With a cache, what it holds is not called again and what succeeds is kept.
public final class EvalRunner: Sendable {
    public let experiment: GatewayExperiment
    public let eval: GatewayEval
    public let items: [EvalItem]
    let transport: any UpstreamTransport
    let cache: EvalCache?
    let clock: any GatewayClock
    let progress: @Sendable (EvalProgress) -> Void
    private let state: Mutex<State>
    private let finishedSignal = DispatchSemaphore(value: 0)
    /// The largest answer kept (a runaway upstream must not take the memory).
    static let maxAnswerBytes = 16 << 20

    public init(experiment: GatewayExperiment, eval: GatewayEval, items: [EvalItem], transport: any UpstreamTransport,
                cache: EvalCache?, clock: any GatewayClock = SystemClock(), seed: UInt64 = 1,
                progress: @escaping @Sendable (EvalProgress) -> Void = { _ in }) {
        self.experiment = experiment
        self.eval = eval
        self.items = items
        self.transport = transport
        self.cache = cache
        self.clock = clock
        self.progress = progress
        state = Mutex(State(queue: CallQueue(limit: eval.plan.concurrency), random: SplitMix64(seed: seed)))
    }

    // MARK: - The work

    /// One call to make (with its retries).
    enum Work: Sendable {
        case answer(item: Int, variant: Int, repetition: Int)
        case pairwise(scorer: Int, item: Int, repetition: Int, first: Int, second: Int)
        case pointwise(scorer: Int, item: Int, repetition: Int, variant: Int)
    }

    /// A call waiting or under way (its request is made when it starts).
    struct Job: Sendable {
        var work: Work
        var key: String
        var upstream: String
        var attempts = 0
    }

    struct State {
        var queue: CallQueue
        /// Jitter of the retry delays.
        var random: SplitMix64
        /// Calls registered and not over, by id.
        var jobs: [Int: Job] = [:]
        var nextJobID = 0
        /// The next answer to register (an index over requests, repetitions, variants).
        var nextAnswer = 0
        /// Every answer's slot (`slot(item, repetition, variant)`); status "missing" until it comes.
        var answers: [EvalAnswer] = []
        var judgments: [EvalJudgment] = []
        var stats = EvalRunStats()
        var done = 0
        var total = 0
        var outstanding = 0
        var stopping = false
        var cacheError: StoreError?


    }

    var variants: [GatewayVariant] { experiment.variants }
    var controlIndex: Int { experiment.variants.firstIndex { $0.name == experiment.control } ?? 0 }
    var repetitions: Int { eval.plan.repetitions }

    /// The variant pairs a pairwise judge compares: each variant with the control (and, with three or more,
    /// every pair, for Bradley-Terry).
    var judgedPairs: [(Int, Int)] {
        let n = variants.count
        var pairs: [(Int, Int)] = []
        for a in 0..<n { for b in (a + 1)..<n { pairs.append((a, b)) } }
        return pairs
    }

    /// Runs everything; blocks until done or `stop()`. A cache that cannot be read or written does not stop the
    /// run: the answers are still analysed, and `stats.cacheError` says what was not kept.
    public func run() -> (observations: EvalObservations, stats: EvalRunStats) {
        let started = clock.monotonicNanoseconds()
        state.withLock { s in
            s.answers = Array(repeating: EvalAnswer(item: 0, variant: 0, repetition: 0, status: Self.missing), count: items.count * variants.count * repetitions)
            s.total = s.answers.count + estimatedJudgeCalls()
        }
        launch(feed())
        while !isOver {
            if finishedSignal.wait(timeout: .now() + 0.25) == .success { continue }
            try? cache?.commit()
        }
        do { try cache?.commit() } catch { state.withLock { if $0.cacheError == nil { $0.cacheError = error } } }
        let result = state.withLock { s -> (EvalObservations, EvalRunStats) in
            s.stats.seconds = Double(clock.monotonicNanoseconds() &- started) / 1e9
            // Moved out, not copied: the state's copy is dropped first.
            var answers = s.answers
            s.answers = []
            if s.stopping { answers.removeAll { $0.status == Self.missing } }
            let observations = EvalObservations(items: items, variants: variants.map(\.name), control: controlIndex,
                                                repetitions: repetitions, answers: answers, judgments: s.judgments)
            var stats = s.stats
            stats.cacheError = s.cacheError?.description
            return (observations, stats)
        }
        return result
    }

    /// Stops starting calls; those in flight finish. `run` then returns what it has.
    public func stop() {
        state.withLock { s in
            s.stopping = true
            s.stats.stopped = true
            for id in s.queue.drain() { s.jobs[id] = nil }
            s.outstanding = s.jobs.count
        }
        finishedSignal.signal()
    }

    /// Every call registered is over and no answer is left to register (or the run was stopped).
    private var isOver: Bool {
        state.withLock { s in s.outstanding == 0 && (s.stopping || s.nextAnswer >= s.answers.count) }
    }

    /// Answers waiting to start, at most: they are registered a few at a time, so the queue never holds the
    /// whole dataset and the judge calls of early answers go out while later answers wait.
    private var feedAhead: Int { max(64, 4 * eval.plan.concurrency) }

    /// Registers answers until enough wait (answers found in the cache complete at once); returns the calls
    /// that may start.
    private func feed() -> [Int] {
        var starts: [Int] = []
        let k = variants.count
        while true {
            let next: Int? = state.withLock { s in
                guard !s.stopping, s.nextAnswer < s.answers.count, s.queue.waitingCount < feedAhead else { return nil }
                defer { s.nextAnswer += 1 }
                return s.nextAnswer
            }
            guard let n = next else { return starts }
            starts += submit(.answer(item: n / (k * repetitions), variant: n % k, repetition: (n / k) % repetitions))
        }
    }

    private func estimatedJudgeCalls() -> Int {
        var n = 0
        for scorer in eval.plan.scorers {
            guard case .judge(let j) = scorer else { continue }
            n += j.isPairwise ? items.count * repetitions * judgedPairs.count * 2 : items.count * repetitions * variants.count
        }
        return n
    }

    // MARK: - Making requests

    /// The request every variant gets for an item: as a client would send it to the gateway.
    func clientBody(_ item: EvalItem) -> (body: [UInt8], endpoint: Endpoint) {
        let stream = eval.plan.stream
        let model = JSONWriter.quote(experiment.model)
        if let messages = item.messagesJSON {
            return (Array("{\"model\":\(model),\"messages\":\(messages),\"stream\":\(stream)}".utf8), .chatCompletions)
        }
        return (Array("{\"model\":\(model),\"prompt\":\(JSONWriter.quote(item.prompt ?? "")),\"stream\":\(stream)}".utf8), .completions)
    }

    /// SHA-256 of the parts, each followed by a zero byte, in hex: the cache's keys (and the labels').
    package static func key(_ parts: String...) -> String {
        var h = SHA256()
        for p in parts { h.update(Array(p.utf8)); h.update([0]) }
        return h.finalize().map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    /// What one call is made of: the body a client would send the gateway, the endpoint, and the variant (or
    /// the judge) that rewrites it. Built when the job is registered (for its cache key) and again when it
    /// starts, so that a queued job holds no request: tens of thousands of judge prompts wait in the queue.
    func call(for work: Work) -> (body: [UInt8], endpoint: Endpoint, variant: GatewayVariant) {
        switch work {
        case .answer(let i, let v, _):
            let (body, endpoint) = clientBody(items[i])
            return (body, endpoint, variants[v])
        case .pairwise(let k, let i, let r, let first, let second):
            guard case .judge(let judge) = eval.plan.scorers[k] else { preconditionFailure("not a judge") }
            let (a, b) = state.withLock { s in (s.answers[slot(i, r, first)].text ?? "", s.answers[slot(i, r, second)].text ?? "") }
            return (judgeBody(judge.pairwisePrompt(question: items[i].judgeQuestion, answerA: a, answerB: b, reference: items[i].reference)),
                    .chatCompletions, eval.judge!)
        case .pointwise(let k, let i, let r, let v):
            guard case .judge(let judge) = eval.plan.scorers[k] else { preconditionFailure("not a judge") }
            let answer = state.withLock { s in s.answers[slot(i, r, v)].text ?? "" }
            return (judgeBody(judge.pointwisePrompt(question: items[i].judgeQuestion, answer: answer, reference: items[i].reference)),
                    .chatCompletions, eval.judge!)
        }
    }

    /// The base URL a call goes to (its queue).
    func upstream(for work: Work) -> String {
        if case .answer(_, let v, _) = work { return variants[v].upstream.baseURL }
        return eval.judge!.upstream.baseURL
    }

    func judgeBody(_ prompt: JudgePrompt) -> [UInt8] {
        Array("{\"model\":\"judge\",\"messages\":[{\"role\":\"system\",\"content\":\(JSONWriter.quote(prompt.system))},{\"role\":\"user\",\"content\":\(JSONWriter.quote(prompt.user))}],\"stream\":false}".utf8)
    }

    /// The cache key of a call: what determines its answer.
    func key(for work: Work, _ call: (body: [UInt8], endpoint: Endpoint, variant: GatewayVariant)) -> String {
        let body = String(decoding: call.body, as: UTF8.self)
        if case .answer(_, _, let r) = work {
            return Self.key("answer/1", call.variant.definition, call.endpoint == .chatCompletions ? "chat" : "completions",
                            eval.plan.stream ? "stream" : "whole", body, String(r))
        }
        return Self.key("judge/1", call.variant.definition, body)
    }

    /// The status of an answer not in yet.
    static let missing = "missing"

    /// The index of an answer in `State.answers`.
    func slot(_ item: Int, _ repetition: Int, _ variant: Int) -> Int { (item * repetitions + repetition) * variants.count + variant }

    // MARK: - Scheduling

    /// Registers a call: answered from the cache at once, or queued. Returns the job ids that may start.
    private func submit(_ work: Work) -> [Int] {
        // Keys only matter to the cache: without one, the request is made once, when the call starts.
        let job = Job(work: work, key: cache == nil ? "" : key(for: work, call(for: work)), upstream: upstream(for: work))
        var cached: EvalCache.Entry?
        if let cache {
            do { cached = try cache.entry(job.key) } catch { state.withLock { if $0.cacheError == nil { $0.cacheError = error } } }
        }
        if let cached {
            return complete(job, .cached(cached))
        }
        return state.withLock { s -> [Int] in
            guard !s.stopping else { return [] }
            let id = s.nextJobID
            s.nextJobID += 1
            s.jobs[id] = job
            s.outstanding += 1
            return s.queue.submit(id, upstream: job.upstream)
        }
    }

    private func launch(_ ids: [Int]) {
        for id in ids { attempt(id) }
    }

    /// How one attempt ended.
    enum Outcome {
        case cached(EvalCache.Entry)
        case answered(text: String, latencyMs: Double, ttftMs: Double?, inputTokens: Int?, outputTokens: Int?, attempts: Int)
        case failed(status: String, httpStatus: Int?, message: String, attempts: Int)
    }

    private func attempt(_ id: Int) {
        let job = state.withLock { s -> Job in
            s.jobs[id]!.attempts += 1
            s.stats.calls += 1
            return s.jobs[id]!
        }
        let call = call(for: job.work)
        let client: ClientRequest
        do { client = try ClientRequest.parse(call.body, endpoint: call.endpoint) } catch {
            // Exactly what the gateway would answer a client sending it: not worth a retry.
            finishedCall(id, upstream: job.upstream, .failed(status: "invalid_request", httpStatus: error.status,
                                                             message: "the gateway would refuse this request: \(error.message)", attempts: job.attempts))
            return
        }
        let request = ProxyDecision.upstreamRequest(client, variant: call.variant, endpoint: call.endpoint)
        let started = clock.monotonicNanoseconds()
        var record = EventRecord(kind: .request, timestamp: clock.wallMicroseconds(), experiment: experiment.name)
        record.requestID = job.key
        let context = UpstreamReply.Context(endpoint: call.endpoint, stream: client.stream, clientWantsUsage: false, logContent: true,
                                            responseHeaders: [], started: started, budgetLimit: Self.maxAnswerBytes, record: record)
        // An answer over `maxAnswerBytes` (streamed or not) is dropped and its call stopped: a runaway upstream
        // must not take the memory.
        let reply = Mutex((reply: UpstreamReply(context), bytes: 0, tooLarge: false, call: (any UpstreamCallHandle)?.none))
        let clock = self.clock
        let handle = transport.start(request, handlers: UpstreamHandlers(
            onResponse: { head in reply.withLock { _ = $0.reply.responded(head) } },
            onData: { bytes in
                let cancel = reply.withLock { r -> (any UpstreamCallHandle)? in
                    guard !r.tooLarge else { return nil }
                    r.bytes += bytes.count
                    if r.bytes > Self.maxAnswerBytes {
                        r.tooLarge = true
                        return r.call
                    }
                    switch r.reply.mode {
                    case .dropping: break
                    case .buffering: _ = r.reply.buffer(bytes, reserved: true)
                    case .streaming: _ = r.reply.stream(bytes) { clock.monotonicNanoseconds() }
                    }
                    return nil
                }
                cancel?.cancel()
            },
            onFinish: { [self] outcome in
                let (done, tooLarge) = reply.withLock { r in
                    (r.reply.finish(outcome, clientGone: false, now: clock.monotonicNanoseconds()), r.tooLarge)
                }
                if tooLarge {
                    finishedCall(id, upstream: job.upstream, .failed(status: "upstream_error", httpStatus: nil,
                                                                     message: "the answer is larger than \(Self.maxAnswerBytes >> 20) MB: left out, not retried",
                                                                     attempts: job.attempts))
                } else {
                    finished(id, done)
                }
            }))
        let cancelNow = reply.withLock { r -> Bool in
            r.call = handle
            return r.tooLarge
        }
        if cancelNow { handle.cancel() }
    }

    private func finished(_ id: Int, _ done: UpstreamReply.Completion) {
        let event = done.event
        var httpStatus: Int?
        var retryAfter: String?
        var bodyText = ""
        switch done.reply {
        case .respond(let status, let headers, let body):
            httpStatus = status
            retryAfter = headers.first { $0.0.lowercased() == "retry-after" }?.1
            if status >= 300 || !done.answered { bodyText = String(decoding: body.prefix(300), as: UTF8.self) }
        case .endStream(let tail, _):
            if event.status != "ok" { bodyText = String(decoding: tail.prefix(300), as: UTF8.self) }
        }
        let (job, retry) = state.withLock { s -> (Job, Bool) in
            let job = s.jobs[id]!
            let retry = event.status != "ok" && !s.stopping && job.attempts <= eval.plan.retries
                && CallQueue.isRetryable(httpStatus: httpStatus, status: event.status)
            if retry { s.stats.retries += 1 }
            return (job, retry)
        }
        if retry {
            let delay = state.withLock { s in CallQueue.retryDelay(attempt: job.attempts, retryAfter: retryAfter, unit: s.random.unit()) }
            let status = httpStatus
            DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [self] in
                let stopping = state.withLock { $0.stopping }
                if stopping {
                    finishedCall(id, upstream: job.upstream, .failed(status: event.status, httpStatus: status, message: "stopped before its retry", attempts: job.attempts))
                } else {
                    attempt(id)
                }
            }
            return
        }
        let outcome: Outcome
        if event.status == "ok" && !done.answered {
            // A 200 that is not a completion (a web page, `{}`): the base URL is likely wrong; not worth a retry.
            let shown = bodyText.isEmpty ? "" : ": " + bodyText.prefix(120)
            finishedCall(id, upstream: job.upstream, .failed(status: "upstream_error", httpStatus: httpStatus,
                                                             message: "HTTP \(httpStatus ?? 200) but the body is not a completion (no choices[0].message.content or text, or not valid JSON in UTF-8; is the base URL the server's /v1?)\(shown)",
                                                             attempts: job.attempts))
            return
        }
        if event.status == "ok", let text = event.response, httpStatus.map({ (200..<300).contains($0) }) ?? true {
            outcome = .answered(text: text, latencyMs: event.latencyMs ?? 0, ttftMs: event.ttftMs, inputTokens: event.inputTokens,
                                outputTokens: event.outputTokens, attempts: job.attempts)
        } else {
            var message = httpStatus.map { "HTTP \($0)" } ?? event.status
            if !bodyText.isEmpty { message += ": " + bodyText.trimmingCharacters(in: .whitespacesAndNewlines) }
            outcome = .failed(status: event.status == "ok" ? "upstream_error" : event.status, httpStatus: httpStatus, message: message, attempts: job.attempts)
        }
        finishedCall(id, upstream: job.upstream, outcome)
    }

    /// A queued job is over (for good): frees its slot, records it, starts what may start.
    private func finishedCall(_ id: Int, upstream: String, _ outcome: Outcome) {
        var starts = state.withLock { s in s.queue.finished(upstream: upstream) }
        let job = state.withLock { s in s.jobs.removeValue(forKey: id)! }
        if case .answered(let text, let latency, let ttft, let input, let output, _) = outcome, let cache {
            do {
                try cache.save(job.key, EvalCache.Entry(text: text, latencyMs: latency, ttftMs: ttft, inputTokens: input, outputTokens: output),
                               createdAt: clock.wallMicroseconds())
            } catch { state.withLock { if $0.cacheError == nil { $0.cacheError = error } } }
        }
        starts += complete(job, outcome)
        starts += feed()
        state.withLock { s in s.outstanding -= 1 }
        launch(starts)
        if isOver { finishedSignal.signal() }
    }

    /// Records what a job found; an answer may make judge jobs. Returns the job ids that may start.
    private func complete(_ job: Job, _ outcome: Outcome) -> [Int] {
        var starts: [Int] = []
        switch job.work {
        case .answer(let i, let v, let r):
            var answer = EvalAnswer(item: i, variant: v, repetition: r, status: "ok")
            switch outcome {
            case .cached(let e):
                answer.text = e.text; answer.latencyMs = e.latencyMs; answer.ttftMs = e.ttftMs
                answer.inputTokens = e.inputTokens; answer.outputTokens = e.outputTokens; answer.attempts = 0
            case .answered(let text, let latency, let ttft, let input, let output, let attempts):
                answer.text = text; answer.latencyMs = latency; answer.ttftMs = ttft
                answer.inputTokens = input; answer.outputTokens = output; answer.attempts = attempts
            case .failed(let status, _, let message, let attempts):
                answer.status = status; answer.error = message; answer.attempts = attempts
            }
            let ready = state.withLock { s -> [Int] in
                s.answers[slot(i, r, v)] = answer
                s.done += 1
                if answer.cached { s.stats.cachedAnswers += 1 }
                if !answer.ok { s.stats.failedAnswers += 1 }
                // The variants of this request and repetition that have answered.
                return variants.indices.filter { w in s.answers[slot(i, r, w)].ok }
            }
            reportProgress()
            guard answer.ok, eval.judge != nil else { return [] }
            for (k, scorer) in eval.plan.scorers.enumerated() {
                guard case .judge(let judge) = scorer else { continue }
                if judge.isPairwise {
                    for (a, b) in judgedPairs where (a == v || b == v) && ready.contains(a) && ready.contains(b) {
                        starts += submitPairwise(scorer: k, item: i, repetition: r, a, b)
                    }
                } else {
                    starts += submit(.pointwise(scorer: k, item: i, repetition: r, variant: v))
                }
            }
        case .pairwise(let k, let i, let r, let first, let second):
            var j = EvalJudgment(scorer: k, item: i, repetition: r, first: first, second: second)
            fillJudgment(&j, outcome)
            if j.raw != nil { j.verdict = JudgeScorer.pairwiseVerdict(j.raw!) }
            if j.raw != nil && j.verdict == nil { j.error = "the judge's answer has no verdict ([[A]], [[B]] or [[C]])" }
            record(j)
        case .pointwise(let k, let i, let r, let v):
            var j = EvalJudgment(scorer: k, item: i, repetition: r, first: v)
            fillJudgment(&j, outcome)
            if case .judge(let judge) = eval.plan.scorers[k], let raw = j.raw {
                j.score = judge.pointwiseScore(raw)
                if j.score == nil { j.error = "the judge's answer has no score in the scale" }
            }
            record(j)
        }
        return starts
    }

    /// Both orders of a pair: a verdict that flips with the order is a tie.
    private func submitPairwise(scorer k: Int, item i: Int, repetition r: Int, _ a: Int, _ b: Int) -> [Int] {
        submit(.pairwise(scorer: k, item: i, repetition: r, first: a, second: b))
            + submit(.pairwise(scorer: k, item: i, repetition: r, first: b, second: a))
    }

    private func fillJudgment(_ j: inout EvalJudgment, _ outcome: Outcome) {
        switch outcome {
        case .cached(let e): j.raw = e.text; j.attempts = 0
        case .answered(let text, _, _, _, _, let attempts): j.raw = text; j.attempts = attempts
        case .failed(_, _, let message, let attempts): j.error = message; j.attempts = attempts
        }
    }

    private func record(_ j: EvalJudgment) {
        state.withLock { s in
            s.judgments.append(j)
            s.done += 1
            if j.attempts == 0 { s.stats.cachedJudgments += 1 }
            if j.raw == nil { s.stats.failedJudgments += 1 } else if j.verdict == nil && j.score == nil { s.stats.unparseableJudgments += 1 }
        }
        reportProgress()
    }

    private func reportProgress() {
        let p = state.withLock { s in
            EvalProgress(done: s.done, total: max(s.total, s.done), cached: s.stats.cachedAnswers + s.stats.cachedJudgments,
                         retries: s.stats.retries, failed: s.stats.failedAnswers + s.stats.failedJudgments)
        }
        progress(p)
    }
}
