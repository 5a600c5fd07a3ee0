import BakeoffCore
import Foundation
import Synchronization

/// What an offline eval has already paid for: every successful model call (a variant's answer, a judge's
/// verdict), keyed by what determines it, in an SQLite file of its own.
///
/// An interrupted eval resumes without calling again for what it has; a new judge re-scores old answers for
/// free (its key differs, the answers' do not). Only successful calls are kept: a failure is tried again
/// next time. Results are committed in small batches, so a kill loses at most the last moments' calls.
public final class EvalCache: Sendable {
    /// A call's result as kept.
    public struct Entry: Sendable, Equatable {
        /// The answer's text (a judge's raw verdict for judge calls).
        public var text: String
        public var latencyMs: Double
        public var ttftMs: Double?
        public var inputTokens: Int?
        public var outputTokens: Int?

        public init(text: String, latencyMs: Double, ttftMs: Double? = nil, inputTokens: Int? = nil, outputTokens: Int? = nil) {
            self.text = text
            self.latencyMs = latencyMs
            self.ttftMs = ttftMs
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
        }
    }

    /// Migrations of the cache's schema (appended, never edited: see `Migrator`).
    package static let migrator = Migrator([
        Migration("eval-calls", sql: """
            CREATE TABLE calls (
                key TEXT PRIMARY KEY,
                text TEXT NOT NULL,
                latency_ms REAL NOT NULL,
                ttft_ms REAL,
                input_tokens INTEGER,
                output_tokens INTEGER,
                created_at INTEGER NOT NULL
            ) WITHOUT ROWID;
            """),
        Migration("eval-labels", sql: """
            CREATE TABLE labels (
                key TEXT NOT NULL,
                labeler TEXT NOT NULL,
                source TEXT NOT NULL,
                experiment TEXT NOT NULL,
                request_id TEXT NOT NULL,
                variant TEXT NOT NULL,
                control TEXT NOT NULL,
                verdict TEXT NOT NULL CHECK (verdict IN ('win', 'tie', 'loss')),
                variant_left INTEGER,
                item TEXT NOT NULL,
                note TEXT,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (key, labeler)
            ) WITHOUT ROWID;
            CREATE INDEX labels_by_experiment ON labels (experiment);
            """),
        // 3: every finished report, for the dashboard's offline evals.
        Migration("eval-reports", sql: """
            CREATE TABLE reports (
                id INTEGER PRIMARY KEY,
                experiment TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                summary TEXT NOT NULL,
                json TEXT NOT NULL,
                html TEXT NOT NULL
            );
            """),
    ])

    /// A finished eval report as the cache keeps it.
    public struct SavedReport: Sendable, Equatable {
        public var id: Int64
        public var experiment: String
        /// Microseconds since 1970.
        public var createdAt: Int64
        /// The decision in a sentence.
        public var summary: String
        public var json: String
        public var html: String
    }

    /// Keeps a finished report in the cache at `path` (opened and closed here: the calls' connection is closed
    /// by then), so the dashboard can show it.
    public static func saveReport(path: String, experiment: String, createdAt: Int64, summary: String, json: String, html: String) throws(StoreError) {
        let connection = try Connection(path: path, readOnly: false, label: "eval cache", migrator: migrator)
        let insert = try connection.prepare("INSERT INTO reports (experiment, created_at, summary, json, html) VALUES (?1, ?2, ?3, ?4, ?5)")
        insert.bind(1, experiment)
        insert.bind(2, createdAt)
        insert.bind(3, summary)
        insert.bind(4, json)
        insert.bind(5, html)
        _ = try insert.step()
    }

    /// The reports kept in the cache at `path`, newest first; `id` picks one. A cache from before reports were
    /// kept has none.
    public static func savedReports(path: String, id: Int64? = nil) throws(StoreError) -> [SavedReport] {
        let connection = try Connection(path: path, readOnly: true, label: "eval cache", migrator: migrator)
        guard try connection.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'reports'") > 0 else { return [] }
        let select = try connection.prepare("SELECT id, experiment, created_at, summary, json, html FROM reports" + (id == nil ? "" : " WHERE id = ?1") + " ORDER BY id DESC")
        if let id { select.bind(1, id) }
        var out: [SavedReport] = []
        while try select.step() {
            out.append(SavedReport(id: select.int(0), experiment: select.string(1), createdAt: select.int(2), summary: select.string(3),
                                   json: select.string(4), html: select.string(5)))
        }
        return out
    }

    private struct State {
        var connection: Connection?
        var pending: [(key: String, entry: Entry, created: Int64)] = []
        var lookup: Statement?
        var saved = 0
    }
    private let state: Mutex<State>
    public let path: String
    /// Entries in the file when it was opened.
    public let entriesAtOpen: Int

    /// Opens (or creates, mode 0600) the cache at `path`.
    public init(path: String) throws(StoreError) {
        self.path = path
        // SQLite writes a journal next to the file: the folder must be writable, the file or not.
        let folder = folderOf(path)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue,
           !FileManager.default.isWritableFile(atPath: folder) {
            throw StoreError(.cannotOpen, path: path, "\(path): the folder \(folder) is not writable, and the eval cache (with SQLite's journal beside it) must be written there; choose a cache in a writable folder")
        }
        if FileManager.default.fileExists(atPath: path), !FileManager.default.isWritableFile(atPath: path) {
            throw StoreError(.cannotOpen, path: path, "\(path): the eval cache is read-only (check its permissions); a run would make its calls and keep none of them")
        }
        let connection: Connection
        do {
            connection = try Connection(path: path, readOnly: false, label: "eval cache", migrator: Self.migrator)
        } catch {
            if error.kind == .notAStore {
                throw StoreError(error.kind, path: path, "\(path): not an eval cache (\(error.message)); give another path (the file is left as it is)")
            }
            if error.kind == .damaged {
                throw StoreError(error.kind, path: path, "\(path): the eval cache is damaged (SQLite cannot read it); it only saves calls already made: move it aside or delete it, and the eval calls again")
            }
            throw error
        }
        try connection.execute("PRAGMA synchronous=NORMAL")
        entriesAtOpen = Int(try connection.scalar("SELECT count(*) FROM calls"))
        let lookup = try connection.prepare("SELECT text, latency_ms, ttft_ms, input_tokens, output_tokens FROM calls WHERE key = ?1")
        state = Mutex(State(connection: connection, lookup: lookup))
    }

    /// The entry kept under `key`, if any (including one saved but not yet committed).
    public func entry(_ key: String) throws(StoreError) -> Entry? {
        let result: Result<Entry?, StoreError> = state.withLock { s in
            if let p = s.pending.last(where: { $0.key == key }) { return .success(p.entry) }
            guard let lookup = s.lookup else { return .failure(StoreError(.closed, path: path, "\(path): the eval cache is closed")) }
            lookup.reset()
            lookup.bind(1, key)
            do throws(StoreError) {
                guard try lookup.step() else { return .success(nil) }
                return .success(Entry(text: lookup.string(0), latencyMs: lookup.double(1),
                                      ttftMs: lookup.isNull(2) ? nil : lookup.double(2),
                                      inputTokens: lookup.isNull(3) ? nil : Int(lookup.int(3)),
                                      outputTokens: lookup.isNull(4) ? nil : Int(lookup.int(4))))
            } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Keeps `entry` under `key` (replacing what was there); committed with the next batch.
    public func save(_ key: String, _ entry: Entry, createdAt: Int64) throws(StoreError) {
        let full = state.withLock { s -> Bool in
            s.pending.append((key, entry, createdAt))
            return s.pending.count >= 64
        }
        if full { try commit() }
    }

    /// Commits what was saved.
    public func commit() throws(StoreError) {
        let result: Result<Void, StoreError> = state.withLock { s in
            guard !s.pending.isEmpty else { return .success(()) }
            guard let connection = s.connection else { return .failure(StoreError(.closed, path: path, "\(path): the eval cache is closed")) }
            do throws(StoreError) {
                try connection.inWriteTransaction { () throws(StoreError) in
                    let insert = try connection.prepare("""
                        INSERT OR REPLACE INTO calls (key, text, latency_ms, ttft_ms, input_tokens, output_tokens, created_at)
                        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                        """)
                    for p in s.pending {
                        insert.reset()
                        insert.bind(1, p.key)
                        insert.bind(2, p.entry.text)
                        insert.bind(3, Optional(p.entry.latencyMs))
                        insert.bind(4, p.entry.ttftMs)
                        insert.bind(5, p.entry.inputTokens)
                        insert.bind(6, p.entry.outputTokens)
                        insert.bind(7, p.created)
                        _ = try insert.step()
                    }
                }
                s.saved += s.pending.count
                s.pending.removeAll(keepingCapacity: true)
                return .success(())
            } catch { return .failure(error) }
        }
        try result.get()
    }

    /// Entries committed by this process.
    public var savedCount: Int { state.withLock { $0.saved } }

    /// Commits what is left and closes the file.
    public func close() throws(StoreError) {
        try commit()
        state.withLock { s in
            s.lookup = nil
            s.connection = nil
        }
    }
}

// MARK: - Human labels

extension EvalCache {
    /// A person's verdict on one request's pair of answers (a candidate variant's against the control's),
    /// imported from a filled label sheet (`bakeoff eval import-labels`).
    ///
    /// Its `key` is a hash of what makes the two answers what they are (the experiment, the request, both
    /// variants' definitions), so it stays with those answers when variants are renamed, and a changed variant
    /// (another model or prompt) does not inherit labels of answers it did not give.
    public struct Label: Sendable, Equatable {
        public enum Verdict: String, Sendable, CaseIterable { case win, tie, loss }
        public var key: String
        /// Who labelled; one label per key and labeler.
        public var labeler: String
        /// The file it came from.
        public var source: String
        public var experiment: String
        public var requestID: String
        /// The candidate's and the control's names when the sheet was made.
        public var variant: String
        public var control: String
        /// The candidate against the control.
        public var verdict: Verdict
        /// Whether the candidate's answer was shown on the left.
        public var variantWasLeft: Bool?
        /// The sheet's item code.
        public var item: String
        public var note: String?
        /// Microseconds since 1970.
        public var createdAt: Int64

        public init(key: String, labeler: String, source: String, experiment: String, requestID: String, variant: String,
                    control: String, verdict: Verdict, variantWasLeft: Bool?, item: String, note: String?, createdAt: Int64) {
            self.key = key
            self.labeler = labeler
            self.source = source
            self.experiment = experiment
            self.requestID = requestID
            self.variant = variant
            self.control = control
            self.verdict = verdict
            self.variantWasLeft = variantWasLeft
            self.item = item
            self.note = note
            self.createdAt = createdAt
        }
    }

    /// Keeps `labels`, all or none (one transaction). A label with the key and labeler of one kept replaces it,
    /// so a corrected file imported again updates its labels.
    public func saveLabels(_ labels: [Label]) throws(StoreError) {
        let result: Result<Void, StoreError> = state.withLock { s in
            guard let connection = s.connection else { return .failure(StoreError(.closed, path: path, "\(path): the eval cache is closed")) }
            // `entry` leaves its statement on a row, which keeps a read snapshot open: end it first.
            s.lookup?.reset()
            do throws(StoreError) {
                try connection.inWriteTransaction { () throws(StoreError) in
                    let insert = try connection.prepare("""
                        INSERT OR REPLACE INTO labels (key, labeler, source, experiment, request_id, variant, control, verdict,
                                                       variant_left, item, note, created_at)
                        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                        """)
                    for l in labels {
                        insert.reset()
                        insert.bind(1, l.key)
                        insert.bind(2, l.labeler)
                        insert.bind(3, l.source)
                        insert.bind(4, l.experiment)
                        insert.bind(5, l.requestID)
                        insert.bind(6, l.variant)
                        insert.bind(7, l.control)
                        insert.bind(8, l.verdict.rawValue)
                        insert.bind(9, l.variantWasLeft.map { $0 ? 1 : 0 })
                        insert.bind(10, l.item)
                        if let note = l.note { insert.bind(11, note) } else { insert.bind(11, nil as Int?) }
                        insert.bind(12, l.createdAt)
                        _ = try insert.step()
                    }
                }
                return .success(())
            } catch { return .failure(error) }
        }
        try result.get()
    }

    /// The labels kept: of one experiment (by the name it had at import) or all, and only those under `keys`
    /// when given; ordered by key and labeler.
    public func labels(experiment: String? = nil, keys: Set<String>? = nil) throws(StoreError) -> [Label] {
        let result: Result<[Label], StoreError> = state.withLock { s in
            guard let connection = s.connection else { return .failure(StoreError(.closed, path: path, "\(path): the eval cache is closed")) }
            // `entry` leaves its statement on a row, which keeps a read snapshot open: end it, to see what other
            // connections (an import) committed since.
            s.lookup?.reset()
            do throws(StoreError) {
                let query = try connection.prepare("""
                    SELECT key, labeler, source, experiment, request_id, variant, control, verdict, variant_left, item, note, created_at
                    FROM labels WHERE ?1 IS NULL OR experiment = ?1 ORDER BY key, labeler
                    """)
                if let experiment { query.bind(1, experiment) } else { query.bind(1, nil as Int?) }
                var out: [Label] = []
                while try query.step() {
                    let key = query.string(0)
                    if let keys, !keys.contains(key) { continue }
                    out.append(Label(key: key, labeler: query.string(1), source: query.string(2), experiment: query.string(3),
                                     requestID: query.string(4), variant: query.string(5), control: query.string(6),
                                     verdict: Label.Verdict(rawValue: query.string(7)) ?? .tie,
                                     variantWasLeft: query.isNull(8) ? nil : query.int(8) != 0, item: query.string(9),
                                     note: query.isNull(10) ? nil : query.string(10), createdAt: query.int(11)))
                }
                return .success(out)
            } catch { return .failure(error) }
        }
        return try result.get()
    }
}
