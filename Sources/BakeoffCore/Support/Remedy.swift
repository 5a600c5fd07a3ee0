/// What a user can do about an error, in the domain's words.
///
/// Why: a library must not name a command-line flag (it is also called by the gateway and by tests), yet the
/// user at a terminal wants the flag. The library names the remedy; the front end says how (`--experiment`).
public enum Remedy: Sendable, Equatable {
    /// The input holds several experiments: choose one.
    case chooseExperiment
    /// No variant is named "control": say which one is the control.
    case nameControl
    /// Reading in pieces needs temporary files: read in one piece instead.
    case readInOnePiece
    /// The event store is empty: point at the gateway's store, or import a log into it.
    case pointAtTheGatewayStore
    /// An input of a sample-size question is out of range: correct it.
    case correctPlanInput(PlanInput)
    /// A group-sequential test without a horizon: give the planned users or a maximum runtime.
    case planAHorizon
}

/// The inputs of a sample-size question, named as the planner knows them.
public enum PlanInput: String, Sendable, Equatable {
    case alpha, power, treatmentShare, standardDeviation, baseline, minimumDetectableEffect, dailyUsers, looks
}

/// An error that knows what the user can do about it.
public protocol RemedyCarrying: Error {
    var remedy: Remedy? { get }
}
