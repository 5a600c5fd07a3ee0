import BakeoffCore

/// A problem with the event store: what kind of problem (for callers that react to it), the store's path, and a
/// message that names the path and says what to do. Messages never name command-line options: a tool adds its
/// own hints by `kind` (see `StoreError.Kind`).
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// No path was given.
        case noPath
        /// The path is a directory.
        case isDirectory
        /// The file cannot be opened (missing for a reader, no permission, ...).
        case cannotOpen
        /// A new store cannot be created (its folder does not exist, no permission, ...).
        case cannotCreate
        /// The file is not an event store: not an SQLite database, its header is damaged, or a database of
        /// something else (tables but no schema version, or no events table).
        case notAStore
        /// The store is damaged (the open-time check found problems, or SQLite reported corruption); the message
        /// says how to recover what is readable.
        case damaged
        /// The store was written by a newer version (`version` of its schema; this one knows `supported`).
        case newerSchema(version: Int, supported: Int)
        /// The migration `id`, which brings the schema to `version`, failed; the store stays at the version before.
        case migrationFailed(id: String, version: Int)
        /// Any other SQLite failure (disk full, I/O error, busy, read-only, ...), with its extended result code.
        case sqlite(code: Int32)
        /// A statement PostgreSQL refused, with its SQLSTATE ("" when the failure was the connection's).
        case postgres(sqlState: String)
        /// The store's file was deleted, moved or replaced while it was open.
        case fileMoved
        /// The store is closed.
        case closed
        /// The writer's queue is full.
        case queueFull(capacity: Int)
        /// A durable append refused because writes are failing (they are retried; see `EventStore.health`).
        case failing
        /// Invalid `StoreOptions`.
        case invalidOptions
        /// The store holds no events (a tool may say where stores usually are, or how to load a log).
        case empty
        /// The experiment `name` is not in the store; `available` lists what is, most events first.
        case experimentNotFound(name: String, available: [ExperimentCount])
        /// The store holds several experiments and none was chosen (a tool may say how to choose one).
        case severalExperiments([ExperimentCount])
        /// A message from outside the store (`init(_:)`).
        case other
    }

    public var kind: Kind
    /// The store's path ("" when not known).
    public var path: String
    public var message: String

    public init(_ kind: Kind, path: String, _ message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    /// An error of kind `.other`, for messages about a store made outside this module.
    public init(_ message: String) {
        self.init(.other, path: "", message)
    }

    public var description: String { message }

    /// The store at `path` holds no events.
    public static func empty(path: String) -> StoreError {
        StoreError(.empty, path: path, "\(path): no events: the event store is empty")
    }

    /// The store at `path` holds several experiments (`counts`, most events first) and none was chosen.
    public static func severalExperiments(path: String, counts: [ExperimentCount]) -> StoreError {
        StoreError(.severalExperiments(counts), path: path, "\(path): the store holds several experiments: \(ExperimentCount.listing(counts))")
    }

    /// The experiment `name` is not among those in the store at `path` (`counts`).
    public static func experimentNotFound(path: String, name: String, counts: [ExperimentCount]) -> StoreError {
        StoreError(.experimentNotFound(name: name, available: counts), path: path,
                   "\(path): experiment \"\(name)\" not found; " + (counts.isEmpty ? "the store is empty" : "the store holds: \(ExperimentCount.listing(counts))"))
    }
}

/// How many events (QA events included) an experiment has in the store.
public struct ExperimentCount: Sendable, Equatable {
    public var name: String
    public var count: Int

    public init(name: String, count: Int) {
        self.name = name
        self.count = count
    }

    /// "e (12 events), f (3 events)": the first five, then how many more.
    static func listing(_ all: [ExperimentCount]) -> String {
        let listed = all.prefix(5).map { "\($0.name) (\($0.count) events)" }.joined(separator: ", ")
        return listed + (all.count > 5 ? " and \(all.count - 5) more with \(all.dropFirst(5).reduce(0) { $0 + $1.count }) events" : "")
    }
}

extension StoreError: RemedyCarrying {
    /// What the user can do: choose among several experiments, or point at a store that has events.
    public var remedy: Remedy? {
        switch kind {
        case .empty: .pointAtTheGatewayStore
        case .severalExperiments: .chooseExperiment
        default: nil
        }
    }
}
