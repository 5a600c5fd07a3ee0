/// An invalid split or variant allocation, with a message that says what to change.
public struct AssignmentError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The whole message, e.g. `--variants: weights sum to 0.9, they must sum to 1 (got a=0.5,b=0.4)`.
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
